"""Block CUSUM: exact crossing rows, batch-size invariance, caps and episodes."""

import numpy as np
import pytest

from inferwatch.detectors.cusum import BlockCusum, LaneState
from inferwatch.detectors.kernels import block_walk
from inferwatch.detectors.lanes import LaneTable


def lane_table(up=2.0, down=-0.05, h=10.0):
    return LaneTable(("missing",), np.array([[down], [up]]), np.array([h]), np.array([2.0]),
                     np.array([0.01]), np.array([0.0]), np.array([1]))


def per_event_reference(codes, table, h, block):
    """Slow, obvious implementation: per-event CUSUM restarted from the block value."""
    s_block, partial, w, fired = 0.0, 0.0, 0.0, []
    for t, c in enumerate(codes):
        partial += table[c]
        w = max(0.0, w + table[c])
        if w >= h and not fired:
            fired.append(t)
        if (t + 1) % block == 0:
            s_block = min(h, max(0.0, s_block + partial))
            partial, w = 0.0, s_block
    return fired


def run_in_batches(engine, codes, cuts):
    state = LaneState.fresh(engine.lanes)
    out, start = [], 0
    for size in cuts:
        part = codes[start:start + size]
        out += [(t.action, start + t.row) for t in engine.advance(state, part, start)]
        start += size
    return out, state


def test_fires_at_the_exact_event_of_the_per_event_definition():
    """The firing row equals a per-event loop of the same statistic."""
    for seed in range(20):
        rng = np.random.default_rng(seed)
        codes = (rng.random(3000) < np.where(np.arange(3000) < 2000, 0.01, 0.25)).astype(np.int64)
        table = lane_table(up=1.5, down=-0.3)
        expected = per_event_reference(codes, table.table[:, 0], 10.0, 8)
        got, _ = run_in_batches(BlockCusum(table, block=8), codes, [1234, 1766])
        assert expected and got[0] == ("fire", expected[0])


@pytest.mark.parametrize("cuts", [[3000], [1] * 3000, [7, 500, 13, 2480], [999, 1001, 1000]])
def test_same_transitions_whatever_the_batch_cuts(cuts):
    """Batch boundaries never change what fires or clears, nor the final state."""
    rng = np.random.default_rng(1)
    p = np.where((np.arange(3000) > 1000) & (np.arange(3000) < 1600), 0.4, 0.01)
    codes = (rng.random(3000) < p).astype(np.int64)
    engine = BlockCusum(lane_table(), block=16)
    whole, s1 = run_in_batches(engine, codes, [3000])
    cut, s2 = run_in_batches(engine, codes, cuts)
    assert whole == cut
    assert [a for a, _ in whole] == ["fire", "clear"]
    np.testing.assert_allclose(s1.value, s2.value)
    np.testing.assert_allclose(s1.partial, s2.partial)


def test_block_walk_matches_the_recursion():
    """The compiled walk equals the scalar recursion S = min(h, max(0, S + x))."""
    rng = np.random.default_rng(2)
    for _ in range(50):
        x, h = rng.normal(rng.normal(), 3, (200, 3)), rng.uniform(1, 20, 3)
        s0 = rng.uniform(0, h)
        after, _, _ = block_walk(np.hstack([x, np.zeros_like(x)]), s0, s0, False, h, 200)
        v = s0.copy()
        for j in range(200):
            v = np.minimum(h, np.maximum(0.0, v + x[j]))
            np.testing.assert_allclose(after[j], v)


def test_bad_parameters_raise():
    with pytest.raises(ValueError, match="block"):
        BlockCusum(lane_table(), block=0)
    with pytest.raises(ValueError, match="resolve_fraction"):
        BlockCusum(lane_table(), resolve_fraction=1.0)
