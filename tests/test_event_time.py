"""The event-time merge gives one order whatever the chunking, the arrival order, re-reads and restarts."""

from __future__ import annotations

import msgspec
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from inferwatch.streams.event_time import JUMP_SECONDS, EventTimeMerger, event_keys

# per source: a list of event times (NaN: unreadable), offsets 0..n-1
SOURCES = st.lists(st.lists(st.one_of(st.integers(0, 30).map(float), st.integers(0, 3).map(lambda x: 1000.0 * x), st.just(float("nan"))), max_size=25),
                   min_size=2, max_size=4)


def run(times: list[list[float]], plan: list[int], cuts: int, redeliver: bool, restart_at: int | None) -> list:
    """Feed each source's messages in chunks of ``cuts`` (+1), sources picked by ``plan``; release as it goes."""
    merger = EventTimeMerger(range(len(times)))
    sent = [0] * len(times)
    out: list[tuple[int, int]] = []
    step = 0
    for s, t in enumerate(times):
        if not t:  # a source with nothing at all is at its end from the start
            merger.close(s)

    def take():
        s, o, _ = merger.release()
        out.extend(zip(s.tolist(), o.tolist()))

    while any(sent[s] < len(t) for s, t in enumerate(times)):
        open_sources = [s for s, t in enumerate(times) if sent[s] < len(t)]
        s = open_sources[plan[step % len(plan)] % len(open_sources)] if plan else open_sources[0]
        lo, hi = sent[s], min(sent[s] + cuts + 1, len(times[s]))
        if redeliver and lo:  # a restart of the reader: the last message again, with the chunk
            lo -= 1
        offs = list(range(lo, hi))
        merger.push(s, offs, [times[s][i] for i in offs], [f"{s}:{i}".encode() for i in offs])
        sent[s] = hi
        if sent[s] == len(times[s]):
            merger.close(s)
        take()
        step += 1
        if restart_at is not None and step == restart_at:  # the state through a store and back
            merger = EventTimeMerger.from_dict(msgspec.msgpack.decode(msgspec.msgpack.encode(merger.to_dict())))
    take()
    return out


def reference_order(times: list[list[float]]) -> list[tuple[int, int]]:
    """By (place, source, offset): the running max of the readable times, a jump of more than JUMP_SECONDS
    counted only when the readable time before it jumped too (then the lesser); unreadable ones keep their place."""
    rows = []
    for s, t in enumerate(times):
        key, before = -np.inf, None
        for o, x in enumerate(t):
            if not np.isnan(x):
                if x <= key + JUMP_SECONDS or key == -np.inf:
                    key = max(key, x)
                elif before is not None and before > key + JUMP_SECONDS:
                    key = max(key, min(x, before))
                before = x
            rows.append((key, s, o))
    return [(s, o) for _, s, o in sorted(rows)]


@settings(max_examples=300, deadline=None)
@given(times=SOURCES, plan=st.lists(st.integers(0, 3), max_size=20), cuts=st.integers(0, 6),
       redeliver=st.booleans(), restart_at=st.one_of(st.none(), st.integers(1, 10)))
def test_any_arrival_gives_the_one_order_and_nothing_twice(times, plan, cuts, redeliver, restart_at):
    assert run(times, plan, cuts, redeliver, restart_at) == reference_order(times)


def test_an_open_source_holds_the_others_back_until_it_is_closed():
    m = EventTimeMerger([0, 1])
    m.push(0, [0, 1, 2], [1.0, 2.0, 3.0], [b"a", b"b", b"c"], keyed=True)
    assert m.release()[2] == [] and m.holding() == [1]  # source 1 has said nothing: its watermark is -inf
    m.close(1)  # idle: it no longer counts
    assert m.release()[2] == [b"a", b"b"] and m.pending() == 1
    m.push(1, [0], [2.5], [b"late"], keyed=True)  # it speaks again: open, and its time is the watermark
    assert m.release()[2] == [] and m.watermark() == 2.5
    m.push(1, [1], [9.0], [b"x"], keyed=True)
    assert m.release()[2] == [b"late"]  # c's time is source 0's latest: source 0 may send another 3.0
    m.close(0)
    assert m.release()[2] == [b"c"] and m.holding() == [1]


def test_a_closed_source_stays_closed_on_a_re_read_and_comes_back_late_not_early():
    m = EventTimeMerger([0, 1])
    m.push(0, [0, 1], [1.0, 2.0], [b"a", b"b"], keyed=True)
    m.push(1, [0], [1.5], [b"c"], keyed=True)
    m.close(1)
    m.push(1, [0], [1.5], [b"c"], keyed=True)  # read again: nothing new, so the source does not hold the others back
    m.push(0, [2], [5.0], [b"d"], keyed=True)
    assert m.release()[2] == [b"a", b"c", b"b"] and 1 in m.closed
    m.push(1, [1], [1.7], [b"late"], keyed=True)  # back, older than what went: placed at the release point, after b
    m.close(0)
    m.close(1)
    assert m.release()[2] == [b"late", b"d"]
    assert m.pending() == 0


@settings(max_examples=200, deadline=None)
@given(times=st.lists(st.one_of(st.floats(0, 100), st.floats(0, 3) .map(lambda x: 1000.0 * x), st.just(float("nan"))),
                      max_size=30), cut=st.integers(0, 30))
def test_places_do_not_depend_on_where_a_source_is_cut(times, cut):
    """event_keys over a whole source equals event_keys over two pieces, the state carried between them."""
    whole, _ = event_keys(times)
    first, recent = event_keys(times[:cut])
    latest = first[-1] if len(first) else -np.inf
    second, _ = event_keys(times[cut:], latest, recent)
    assert np.concatenate([first, second]).tolist() == whole.tolist()


def test_a_lone_timestamp_far_off_does_not_move_its_source():
    """One event an hour ahead (a clock gone wrong) keeps its neighbours' place; two in a row move it."""
    keys, _ = event_keys([10.0, 11.0, 3_600.0, 12.0, 13.0])
    assert keys.tolist() == [10.0, 11.0, 11.0, 12.0, 13.0]
    keys, _ = event_keys([10.0, 11.0, 3_600.0, 3_601.0, 3_602.0])
    assert keys.tolist() == [10.0, 11.0, 11.0, 3_600.0, 3_602.0]


def late_run(restart: str | None) -> tuple[list[bytes], int]:
    """A source closed (idle) comes back with one time older than what was released, and one newer."""
    m = EventTimeMerger([0, 1])
    m.push(0, [0, 1], [1.0, 2.0], [b"a", b"b"], keyed=True)
    m.push(1, [0], [1.5], [b"c"], keyed=True)
    m.close(1)
    m.push(0, [2], [5.0], [b"d"], keyed=True)
    out = m.release()[2]
    m.push(1, [1, 2], [1.7, 6.0], [b"late", b"x"], keyed=True)
    if restart == "whole":  # the state with its held messages, through a store
        m = EventTimeMerger.from_dict(msgspec.msgpack.decode(msgspec.msgpack.encode(m.to_dict())))
    elif restart == "resume":  # without them: they are read again
        m = EventTimeMerger.from_dict(msgspec.msgpack.decode(msgspec.msgpack.encode(m.resume())))
        m.push(0, [2], [5.0], [b"d"], keyed=True)
        m.push(1, [1, 2], [1.7, 6.0], [b"late", b"x"], keyed=True)
    m.close(0)
    m.close(1)
    return out + m.release()[2], m.late


def test_a_late_message_is_counted_once_when_released_whatever_the_restart():
    assert late_run(None) == ([b"a", b"c", b"b", b"late", b"d", b"x"], 1)
    assert late_run("whole") == late_run(None)
    assert late_run("resume") == late_run(None)
