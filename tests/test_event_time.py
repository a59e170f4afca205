"""The event-time merge gives one order whatever the chunking, the arrival order, re-reads and restarts."""

from __future__ import annotations

import msgspec
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from inferwatch.streams.event_time import EventTimeMerger

# per source: a list of event times (NaN: unreadable), offsets 0..n-1
SOURCES = st.lists(st.lists(st.one_of(st.integers(0, 30).map(float), st.just(float("nan"))), max_size=25),
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
    """By (source's running max time, source, offset), unreadable times keeping their place."""
    rows = []
    for s, t in enumerate(times):
        key = -np.inf
        for o, x in enumerate(t):
            key = key if np.isnan(x) else max(key, x)
            rows.append((key, s, o))
    return [(s, o) for _, s, o in sorted(rows)]


@settings(max_examples=300, deadline=None)
@given(times=SOURCES, plan=st.lists(st.integers(0, 3), max_size=20), cuts=st.integers(0, 6),
       redeliver=st.booleans(), restart_at=st.one_of(st.none(), st.integers(1, 10)))
def test_any_arrival_gives_the_one_order_and_nothing_twice(times, plan, cuts, redeliver, restart_at):
    assert run(times, plan, cuts, redeliver, restart_at) == reference_order(times)


def test_an_open_source_holds_the_others_back_until_it_is_closed():
    m = EventTimeMerger([0, 1])
    m.push(0, [0, 1, 2], [1.0, 2.0, 3.0], [b"a", b"b", b"c"])
    assert m.release()[2] == [] and m.holding() == [1]  # source 1 has said nothing: its watermark is -inf
    m.close(1)  # idle: it no longer counts
    assert m.release()[2] == [b"a", b"b"] and m.pending() == 1
    m.push(1, [0], [2.5], [b"late"])  # it speaks again: open, and its time is the watermark
    assert m.release()[2] == [] and m.watermark() == 2.5
    m.push(1, [1], [9.0], [b"x"])
    assert m.release()[2] == [b"late"]  # c's time is source 0's latest: source 0 may send another 3.0
    m.close(0)
    assert m.release()[2] == [b"c"] and m.holding() == [1]


def test_a_closed_source_stays_closed_on_a_re_read_and_comes_back_late_not_early():
    m = EventTimeMerger([0, 1])
    m.push(0, [0, 1], [1.0, 2.0], [b"a", b"b"])
    m.push(1, [0], [1.5], [b"c"])
    m.close(1)
    m.push(1, [0], [1.5], [b"c"])  # read again: nothing new, so the source does not hold the others back
    m.push(0, [2], [5.0], [b"d"])
    assert m.release()[2] == [b"a", b"c", b"b"] and 1 in m.closed
    m.push(1, [1], [1.7], [b"late"])  # back, older than what went: placed at the release point, after b
    m.close(0)
    m.close(1)
    assert m.release()[2] == [b"late", b"d"]
    assert m.pending() == 0
