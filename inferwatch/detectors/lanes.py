"""Lanes: the log-likelihood ratios every detector is made of, and their calibration.

A *lane* is one alternative hypothesis about a column, written as an
exponential tilt of the reference distribution of its codes along a
*direction* ``d`` (a number per code) by a strength ``theta``::

    p1[k] = p0[k] * exp(theta * d[k]) / M(theta),   M(theta) = sum_k p0[k] exp(theta * d[k])
    llr[k] = log(p1[k] / p0[k]) = theta * d[k] - log M(theta)

Because ``llr`` is an exact log-likelihood ratio, ``E_p0[exp(llr)] = 1`` and a
CUSUM on it has an average run length to false alarm of at least
``exp(h)`` events (Lorden, 1971), whatever the shape of the data. Directions:

=================  ===========================================  ==========
detector           direction over codes                          kind
=================  ===========================================  ==========
``mean``           normal scores of the bins (both signs)        drift
``scale``          squared normal scores (both signs)            drift
``shape``          indicator of each bin (up)                    drift
``mix``            indicator of each label (both signs)          drift
``new_category``   indicator of "unseen label" (up)              data_quality
``missing``        indicator of "missing" (up)                   data_quality
=================  ===========================================  ==========

Calibration turns the false-alarm budget into a threshold per lane:
``h = log(ARL0_lane) * phi * kappa``, where ``phi >= 1`` is the long-run
variance inflation of the lane's increments measured on the reference by
overlapping batch means (a daily cycle or autocorrelation in the reference
widens its own thresholds, an i.i.d. column keeps ``phi = 1``) and
``kappa >= 1`` covers the error of estimating ``p0`` from a finite reference.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .coding import CategoricalCodebook, Codebook, NumericCodebook

__all__ = ["LaneTable", "DETECTOR_KIND", "build_lanes", "calibrate"]

DETECTOR_KIND = {
    "mean": "drift",
    "scale": "drift",
    "shape": "drift",
    "mix": "drift",
    "new_category": "data_quality",
    "missing": "data_quality",
}

DEFAULT_THETAS = {
    "mean": (-2.0, -1.0, -0.5, -0.25, -0.1, 0.1, 0.25, 0.5, 1.0, 2.0),
    "scale": (-0.6, -0.4, -0.25, 0.25, 0.4, 0.6),
    "shape": (1.2,),
    "mix": (-1.0, -0.4, 0.4, 1.0, 2.0),
    "new_category": (3.0, 6.0, 9.0),
    "missing": (1.0, 2.0, 3.5, 6.0),
}


@dataclass(frozen=True)
class LaneTable:
    """The lanes of one column: an LLR per code and lane, and their thresholds.

    ``table[k, j]`` is the increment lane ``j`` adds for an event with code
    ``k``. ``target[j]`` is the code the lane points at (-1 for the mean and
    scale lanes), ``theta[j]`` its strength and ``ref_mean[j]`` the reference
    mean of its direction, so a message can say how far the data moved.
    """

    detectors: tuple[str, ...]
    table: np.ndarray
    thresholds: np.ndarray
    theta: np.ndarray
    log_mgf: np.ndarray
    ref_mean: np.ndarray
    target: np.ndarray

    @property
    def positive(self) -> np.ndarray:
        return np.maximum(self.table, 0.0)

    def detector_names(self) -> list[str]:
        return sorted(set(self.detectors))

    def to_dict(self) -> dict:
        return {
            "detectors": list(self.detectors),
            "table": self.table.tolist(),
            "thresholds": self.thresholds.tolist(),
            "theta": self.theta.tolist(),
            "log_mgf": self.log_mgf.tolist(),
            "ref_mean": self.ref_mean.tolist(),
            "target": self.target.tolist(),
        }

    @classmethod
    def from_dict(cls, raw: dict) -> LaneTable:
        arr = lambda k, dt=np.float64: np.asarray(raw[k], dtype=dt)  # noqa: E731
        table = np.asarray(raw["table"], dtype=np.float64)
        return cls(
            tuple(raw["detectors"]),
            table,
            arr("thresholds"),
            arr("theta"),
            arr("log_mgf"),
            arr("ref_mean"),
            arr("target", np.int64),
        )


def _tilt(direction: np.ndarray, support: np.ndarray, q: np.ndarray, theta: float):
    """LLR column of one tilt: exact on ``support``, zero elsewhere."""
    d = np.where(support, direction, 0.0)
    log_mgf = float(np.log(np.sum(q[support] * np.exp(theta * d[support]))))
    return np.where(support, theta * d - log_mgf, 0.0), log_mgf


def build_lanes(
    book: Codebook,
    ref_codes: np.ndarray,
    detectors: tuple[str, ...],
    thetas: dict[str, tuple[float, ...]] | None = None,
) -> tuple[list[str], list[tuple], np.ndarray]:
    """Uncalibrated lanes for a column: (detector names, lane rows, smoothed p0)."""
    thetas = {**DEFAULT_THETAS, **(thetas or {})}
    n_codes = book.n_codes
    counts = np.bincount(ref_codes, minlength=n_codes).astype(np.float64)
    n = max(len(ref_codes), 1)
    p0 = (counts + 0.5) / (n + 0.5 * n_codes)
    names: list[str] = []
    rows: list[tuple] = []  # (table_column, theta, log_mgf, ref_mean, target)

    def add(detector: str, direction: np.ndarray, support: np.ndarray, target: int) -> None:
        q = np.where(support, p0, 0.0)
        q = q / q.sum()
        ref_mean = float(np.sum(q * np.where(support, direction, 0.0)))
        for theta in thetas[detector]:
            column, log_mgf = _tilt(direction, support, q, theta)
            names.append(detector)
            rows.append((column, theta, log_mgf, ref_mean, target))

    all_codes = np.ones(n_codes, dtype=bool)
    missing = np.zeros(n_codes)
    missing[book.missing_code] = 1.0
    if isinstance(book, NumericCodebook):
        present = all_codes.copy()
        present[book.missing_code] = False
        n_present = int(present.sum())
        if n_present >= 2:
            q = p0[present] / p0[present].sum()
            s = book.scores(q)
            s = (s - q @ s) / max(np.sqrt(q @ (s - q @ s) ** 2), 1e-12)
            sq = s**2
            sq = (sq - q @ sq) / max(np.sqrt(q @ (sq - q @ sq) ** 2), 1e-12)
            score = np.zeros(n_codes)
            score[present] = s
            square = np.zeros(n_codes)
            square[present] = sq
            if "mean" in detectors:
                add("mean", score, present, -1)
            if "scale" in detectors and n_present >= 3:
                add("scale", square, present, -1)
            if "shape" in detectors and n_present >= 3:
                for k in np.flatnonzero(present):
                    add("shape", (np.arange(n_codes) == k).astype(float), present, int(k))
    else:
        assert isinstance(book, CategoricalCodebook)
        mix_support = np.zeros(n_codes, dtype=bool)
        mix_support[: len(book.top)] = True
        if counts[book.other_code] > 0 or book.open_vocabulary:
            mix_support[book.other_code] = True
        if "mix" in detectors and mix_support.sum() >= 2:
            for k in np.flatnonzero(mix_support):
                add("mix", (np.arange(n_codes) == k).astype(float), mix_support, int(k))
        if "new_category" in detectors and not book.open_vocabulary:
            unseen = np.zeros(n_codes)
            unseen[book.unseen_code] = 1.0
            add("new_category", unseen, all_codes, book.unseen_code)
    if "missing" in detectors:
        add("missing", missing, all_codes, book.missing_code)
    return names, rows, p0


def _variance_inflation(llr: np.ndarray, block: int, horizon: float) -> float:
    """Long-run over i.i.d. variance of ``llr``, by overlapping batch means.

    Batches of ``block * m`` events for ``m = 1, 2, 4, ...`` up to the lane's
    memory ``horizon`` (and an eighth of the reference). Each estimate is
    discounted by one standard error, so an i.i.d. column keeps 1.0.
    """
    var = float(np.var(llr))
    n = len(llr)
    if var <= 1e-12 * float(np.mean(llr**2)) or n < 8 * block:
        return 1.0
    csum = np.concatenate([[0.0], np.cumsum(llr - llr.mean())])
    phi = 1.0
    size = block
    while size <= n // 8 and size <= max(horizon, block):
        sums = csum[size:] - csum[:-size]
        ratio = float(np.mean(sums**2)) / (size * var)
        dof = 1.5 * n / size
        phi = max(phi, ratio / (1.0 + np.sqrt(2.0 / dof)))
        size *= 2
    return phi


def calibrate(
    names: list[str],
    rows: list[tuple],
    p0: np.ndarray,
    ref_codes: np.ndarray,
    log_arl0: float,
    block: int,
) -> LaneTable | None:
    """Thresholds for the lanes of one column; lanes that cannot be calibrated are dropped."""
    keep: list[int] = []
    thresholds: list[float] = []
    n = max(len(ref_codes), 1)
    for j, (column, *_rest) in enumerate(rows):
        mu = float(p0 @ column)
        sd = float(np.sqrt(max(p0 @ column**2 - mu**2, 0.0)))
        if mu >= 0.0 or sd == 0.0:
            continue
        horizon = 2.0 * log_arl0 / -mu
        phi = _variance_inflation(column[ref_codes], block, horizon) if len(ref_codes) else 1.0
        pessimistic = mu + sd * np.sqrt(phi / n)
        if pessimistic > 0.25 * mu:
            continue  # the reference is too small to tell this alternative from noise
        kappa = mu / pessimistic
        keep.append(j)
        thresholds.append(log_arl0 * phi * kappa)
    if not keep:
        return None
    pick = [rows[j] for j in keep]
    return LaneTable(
        detectors=tuple(names[j] for j in keep),
        table=np.stack([r[0] for r in pick], axis=1),
        thresholds=np.asarray(thresholds),
        theta=np.asarray([r[1] for r in pick]),
        log_mgf=np.asarray([r[2] for r in pick]),
        ref_mean=np.asarray([r[3] for r in pick]),
        target=np.asarray([r[4] for r in pick], dtype=np.int64),
    )
