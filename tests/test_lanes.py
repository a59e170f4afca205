"""Lanes are exact LLRs; calibration follows the budget and the reference's own variability."""

import math

import numpy as np

from inferwatch.detectors.coding import CategoricalCodebook, NumericCodebook
from inferwatch.detectors.kernels import bin_scores, lane_thresholds, variance_inflation
from inferwatch.detectors.lanes import build_lanes, calibrate
from inferwatch.detectors.types import CategoricalArray, NumericArray


def test_every_lane_is_an_exact_log_likelihood_ratio():
    """E_p0[exp(llr)] = 1 on the lane's support: Lorden's bound applies (at most 1 for the strong lanes on
    the bins beyond the reference's range, normalised on the bound of a zero count: a supermartingale)."""
    rng = np.random.default_rng(0)
    values = rng.lognormal(3, 1, 5000)
    values[rng.random(5000) < 0.03] = np.nan
    book = NumericCodebook.from_reference(values, 16)
    codes = book.encode(NumericArray(values))
    names, rows, p0 = build_lanes(book, codes, ("mean", "scale", "shape", "missing"))
    assert set(names) == {"mean", "scale", "shape", "missing"}
    for name, column in zip(names, rows.table.T):
        support = np.ones(len(column), bool)
        if name != "missing":
            support[book.missing_code] = False
        q = p0 * support / (p0 * support).sum()
        beyond = name == "shape" and 3.9 <= column.max() < 6.9 and int(np.argmax(column)) in (0, len(book.edges))
        if beyond:
            assert float(q @ np.exp(column)) <= 1.0 + 1e-9
        else:
            assert math.isclose(float(q @ np.exp(column)), 1.0, rel_tol=1e-9)


def test_thresholds_grow_with_the_budget():
    rng = np.random.default_rng(1)
    col = CategoricalArray.from_labels(list(rng.choice(["a", "b", "c"], 20000, p=[0.6, 0.3, 0.1])))
    book = CategoricalCodebook.from_reference(col)
    codes = book.encode(col)
    names, rows, p0 = build_lanes(book, codes, ("mix",))
    low = calibrate(names, rows, p0, codes, math.log(1e6), 32)
    high = calibrate(names, rows, p0, codes, math.log(1e12), 32)
    assert np.all(high.thresholds > low.thresholds)
    assert np.all(low.thresholds >= math.log(1e6))


def test_a_cycle_in_the_reference_widens_its_own_thresholds():
    """Batch means see a slow cycle; an i.i.d. series keeps phi = 1."""
    rng = np.random.default_rng(2)
    iid = rng.normal(size=40000)
    cyclic = iid + 2.0 * np.sin(2 * np.pi * np.arange(40000) / 4000)
    assert variance_inflation(iid, 32, 1e9) < 1.05
    assert variance_inflation(cyclic, 32, 1e9) > 10


def test_columns_of_one_shape_share_a_layout_not_their_directions():
    """Two columns with the same bins get the same lanes (one cached layout), each tilted along its own
    reference's normal scores: nothing of the first column's directions reaches the second."""
    rng = np.random.default_rng(5)
    even = rng.choice(10, 4000).astype(float)
    skewed = rng.choice(10, 4000, p=np.arange(1, 11) / 55).astype(float)
    lanes = []
    for values in (even, skewed, even):
        book = NumericCodebook.from_reference(values, 16)
        names, rows, p0 = build_lanes(book, book.encode(NumericArray(values)), ("mean", "scale", "missing"))
        scores = bin_scores(p0[:-1])[0]
        q = p0[:-1] / p0[:-1].sum()
        for j in np.flatnonzero(np.asarray(names) == "mean"):
            theta = rows.theta[j]
            expected = theta * scores - math.log(float(q @ np.exp(theta * scores)))
            assert np.allclose(rows.table[:-1, j], expected, atol=1e-12)
        lanes.append((names, rows.table))
    assert lanes[0][0] == lanes[1][0] == lanes[2][0]
    assert not np.allclose(lanes[0][1], lanes[1][1])
    assert np.array_equal(lanes[0][1], lanes[2][1])


def _indicator_lane(p0: float, theta: float) -> np.ndarray:
    """The llr table (2 codes x 1 lane) of a lane tilting the share of code 0 by ``theta``."""
    log_m = math.log(1 - p0 + p0 * math.exp(theta))
    return np.array([[theta - log_m], [-log_m]])


def test_a_lane_whose_drift_a_reference_cannot_pin_down_is_dropped():
    # A tail label at 0.76 % of a 10,000-event reference: its share is known to about +-0.09 points.
    p0, n = 0.0076, 10_000
    ref_codes = (np.random.default_rng(3).random(n) >= p0).astype(np.int64)  # code 0: the label
    shares = np.array([p0, 1 - p0])
    weak, strong = _indicator_lane(p0, 0.4), _indicator_lane(p0, 1.0)
    # the weak lane's drift turns positive if the true share is ~2.6 standard errors above the estimate:
    # on a long stationary stream it would then cross any threshold (a false alarm)
    true_share = p0 + 2.6 * math.sqrt(p0 * (1 - p0) / n)
    assert true_share * weak[0, 0] + (1 - true_share) * weak[1, 0] > 0
    assert np.isnan(lane_thresholds(weak, shares, ref_codes, math.log(1e9), 64)[0])
    # a lane with a clear margin is kept
    assert np.isfinite(lane_thresholds(strong, shares, ref_codes, math.log(1e9), 64)[0])


def test_a_few_percent_of_values_beyond_the_reference_are_found_by_strong_tilts_on_its_empty_bins():
    """A count of 0-10 in the reference, then 1 event in 20 logged at 50 (a retry storm, a sentinel): the
    bin above the reference's largest value has its own strong tilts, so the change is found after about
    four such values (the information's pace), not after 200 events by the spread."""
    from inferwatch.detectors.config import MonitorConfig
    from inferwatch.detectors.monitor import Monitor
    from inferwatch.detectors.types import Batch

    rng = np.random.default_rng(3)

    def batch(x, start):
        return Batch("m", [f"e{i}" for i in range(start, start + len(x))], 1.7e9 + np.arange(start, start + len(x)),
                     {"n": NumericArray(x)})

    mon = Monitor(MonitorConfig())
    mon.fit_reference(batch(rng.poisson(2.0, 20_000).astype(float), 0))
    lanes = mon.models["m"].columns["n"].lanes
    top = mon.models["m"].columns["n"].book.n_codes - 2  # the bin above the largest value (the last is missing)
    assert sorted(lanes.theta[(lanes.target == top)].tolist()) == [4.0, 7.0, 10.0]
    x = rng.poisson(2.0, 5_000).astype(float)
    x[::20] = 50.0
    fired = [(a.detector, a.row) for a in mon.process(batch(x, 20_000)) if a.status == "firing"]
    assert fired and fired[0][0] == "shape" and fired[0][1] <= 100, fired
