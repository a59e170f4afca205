"""Lanes are exact LLRs; calibration follows the budget and the reference's own variability."""

import math

import numpy as np

from inferwatch.detectors.coding import CategoricalCodebook, NumericCodebook
from inferwatch.detectors.lanes import _variance_inflation, build_lanes, calibrate
from inferwatch.detectors.types import CategoricalArray, NumericArray


def test_every_lane_is_an_exact_log_likelihood_ratio():
    """E_p0[exp(llr)] = 1 on the lane's support: Lorden's bound applies."""
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
    assert _variance_inflation(iid, 32, 1e9) < 1.05
    assert _variance_inflation(cyclic, 32, 1e9) > 10
