"""Pending predictions (the label join's wait): the columns and slots behave as a dict of id -> entry, oldest
first, through growth, reclaimed slots and a save."""

from __future__ import annotations

import msgspec
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from inferwatch.streams.pending import GROWTH, Pending

IDS = st.sampled_from([f"id-{i}" for i in range(40)])
STEP = st.one_of(
    st.tuples(st.just("add"), st.lists(IDS, max_size=30)),
    st.tuples(st.just("take"), st.lists(IDS, max_size=30, unique=True)),
    st.tuples(st.just("oldest"), st.integers(0, 10)),
    st.tuples(st.just("expire"), st.floats(0, 400)),
    st.tuples(st.just("save"), st.none()),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(STEP, max_size=40))
def test_pending_predictions_behave_as_an_ordered_dict_of_entries(steps):
    pending, model = Pending(2), {}  # model: id -> (time, place, value, segment), in first-wait order
    clock = 0
    for kind, arg in steps:
        if kind == "add":
            ids = list(dict.fromkeys(arg))  # (one batch holds an id once: the decoder's duplicates are its own)
            times = np.arange(clock, clock + len(ids), dtype=np.float64)
            places = np.arange(clock, clock + len(ids), dtype=np.int64)
            values = [times / 10, np.array([f"s{int(t) % 3}" for t in times], dtype=object)]
            replaced = pending.add(ids, times, places, values)
            assert replaced == sum(k in model for k in ids)
            for k, t in zip(ids, times.tolist()):
                model[k] = (t, int(t), t / 10, f"s{int(t) % 3}")
            clock += len(ids)
        elif kind == "take":
            rows, waited = pending.take(arg)
            expected = [k for k in arg if k in model]
            assert rows.ids == expected
            assert (waited is None) == (len(expected) == len(arg))
            if waited is not None:
                assert waited.tolist() == [k in model for k in arg]
            assert list(zip(rows.times.tolist(), rows.places.tolist(), rows.values[0].tolist(),
                            rows.values[1].tolist())) == [model.pop(k) for k in expected]
        elif kind == "oldest":
            rows = pending.oldest(arg)
            expected = list(model)[:arg]
            assert rows.ids == expected and rows.times.tolist() == [model.pop(k)[0] for k in expected]
        elif kind == "expire":
            horizon = arg
            rows = pending.waited_past(clock, horizon)
            expected = []
            for k, entry in model.items():
                if clock - entry[0] <= horizon:
                    break
                expected.append(k)
            assert rows.ids == expected
            for k in expected:
                del model[k]
        else:
            pending = Pending.from_dict(msgspec.msgpack.decode(msgspec.msgpack.encode(pending.to_dict())), 2)
        assert len(pending) == len(model)
        assert list(pending.slot) == list(model)


def test_freed_slots_are_reclaimed_when_the_columns_are_full():
    pending = Pending(1)
    for batch in range(20):
        ids = [f"{batch}-{i}" for i in range(GROWTH)]
        pending.add(ids, np.full(GROWTH, float(batch)), np.zeros(GROWTH, dtype=np.int64), [np.zeros(GROWTH)])
        pending.take(ids[: GROWTH - 10])  # most are labelled; ten a batch still wait
    assert len(pending) == 200
    assert len(pending.times) <= 4 * GROWTH  # not 20 batches' worth of slots
    rows, waited = pending.take(["0-1023", "19-1023", "5-0"])
    assert rows.ids == ["0-1023", "19-1023"] and rows.times.tolist() == [0.0, 19.0]
    assert waited.tolist() == [True, True, False]


def test_a_wait_saved_by_the_first_labels_release_is_read():
    """inferwatch 0.2's first labels kept the wait as event id -> (time, place, *values)."""
    saved = {"a": [1.0, 7, 0.9, "eu"], "b": [2.0, 8, None, None]}
    pending = Pending.from_entries(saved, 2)
    rows, _ = pending.take(["b", "a"])
    assert rows.ids == ["b", "a"] and rows.places.tolist() == [8, 7]
    assert rows.values[0].tolist() == [None, 0.9] and rows.values[1].tolist() == [None, "eu"]
