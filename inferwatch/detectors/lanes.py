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
from .kernels import tilt_table

__all__ = ["LaneTable", "LaneRows", "DETECTOR_KIND", "build_lanes", "calibrate"]

DETECTOR_KIND = {
    "mean": "drift",
    "scale": "drift",
    "shape": "drift",
    "mix": "drift",
    "new_category": "data_quality",
    "missing": "data_quality",
}

_CELLS = 2_000_000  # events x lanes per batch-means pass in calibration (16 MB of float64)

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
            "codes": int(self.table.shape[0]),
            "table": self.table.astype("<f8").tobytes(),  # codes x lanes, row-major
            "thresholds": self.thresholds.tolist(),
            "theta": self.theta.tolist(),
            "log_mgf": self.log_mgf.tolist(),
            "ref_mean": self.ref_mean.tolist(),
            "target": self.target.tolist(),
        }

    @classmethod
    def from_dict(cls, raw: dict) -> LaneTable:
        arr = lambda k, dt=np.float64: np.asarray(raw[k], dtype=dt)  # noqa: E731
        table = np.frombuffer(raw["table"], dtype="<f8").reshape(raw["codes"], -1).astype(np.float64)
        return cls(
            tuple(raw["detectors"]),
            table,
            arr("thresholds"),
            arr("theta"),
            arr("log_mgf"),
            arr("ref_mean"),
            arr("target", np.int64),
        )


@dataclass(frozen=True)
class LaneRows:
    """Lanes before calibration: ``table[k, j]`` is lane ``j``'s LLR for code ``k``; the rest per lane."""

    table: np.ndarray
    theta: np.ndarray
    log_mgf: np.ndarray
    ref_mean: np.ndarray
    target: np.ndarray

    def __len__(self) -> int:
        return self.table.shape[1]


def build_lanes(
    book: Codebook,
    ref_codes: np.ndarray,
    detectors: tuple[str, ...],
    thetas: dict[str, tuple[float, ...]] | None = None,
) -> tuple[list[str], LaneRows | None, np.ndarray]:
    """Uncalibrated lanes for a column: (detector names, their rows, smoothed p0); every tilt at once."""
    thetas = {**DEFAULT_THETAS, **(thetas or {})}
    n_codes = book.n_codes
    counts = np.bincount(ref_codes, minlength=n_codes).astype(np.float64)
    n = max(len(ref_codes), 1)
    p0 = (counts + 0.5) / (n + 0.5 * n_codes)
    if isinstance(book, CategoricalCodebook) and not book.open_vocabulary and book.unseen_share > 0:
        # labels the reference never saw arrive at about the share of labels it saw once (Good-Turing)
        p0[book.unseen_code] = max(p0[book.unseen_code], book.unseen_share)
        p0 /= p0.sum()
    # a block is (detector, its directions (one row per spec), the codes they live on, the code each points at)
    blocks: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]] = []
    all_codes = np.ones(n_codes, dtype=bool)
    eye = np.eye(n_codes)
    if isinstance(book, NumericCodebook):
        present = all_codes.copy()
        present[book.missing_code] = False
        n_present = n_codes - 1
        if n_present >= 2:
            q = p0[:-1] / p0[:-1].sum()
            s = book.scores(q)
            s = (s - q @ s) / max(np.sqrt(q @ (s - q @ s) ** 2), 1e-12)
            sq = s**2
            sq = (sq - q @ sq) / max(np.sqrt(q @ (sq - q @ sq) ** 2), 1e-12)
            none = np.array([-1])  # the mean and scale lanes point at no one code
            if "mean" in detectors:
                blocks.append(("mean", np.append(s, 0.0)[None, :], present, none))
            if "scale" in detectors and n_present >= 3:
                blocks.append(("scale", np.append(sq, 0.0)[None, :], present, none))
            if "shape" in detectors and n_present >= 3:
                blocks.append(("shape", eye[:-1], present, np.arange(n_present)))
    else:
        assert isinstance(book, CategoricalCodebook)
        mix_support = np.zeros(n_codes, dtype=bool)
        mix_support[: len(book.top)] = True
        groups = slice(book.other_code, book.other_code + book.groups)
        mix_support[groups] = (counts[groups] > 0) | book.open_vocabulary
        if "mix" in detectors and mix_support.sum() >= 2:
            targets = np.flatnonzero(mix_support)
            blocks.append(("mix", eye[targets], mix_support, targets))
        if "new_category" in detectors and not book.open_vocabulary:
            blocks.append(("new_category", eye[[book.unseen_code]], all_codes, np.array([book.unseen_code])))
    if "missing" in detectors:
        blocks.append(("missing", eye[[book.missing_code]], all_codes, np.array([book.missing_code])))
    if not blocks:
        return [], None, p0
    names: list[str] = []
    theta: list[float] = []
    lane_spec: list[int] = []
    target: list[int] = []
    spec_support: list[int] = []
    for b, (det, dirs, _, points) in enumerate(blocks):
        tilts = thetas[det]
        for code in points.tolist():
            lane_spec += [len(spec_support)] * len(tilts)
            spec_support.append(b)
            target += [code] * len(tilts)
        theta += list(tilts) * len(dirs)
        names += [det] * (len(dirs) * len(tilts))
    directions = np.vstack([dirs for _, dirs, _, _ in blocks])
    table, log_mgf, ref_mean = tilt_table(p0, directions, np.vstack([sup for _, _, sup, _ in blocks]),
                                          np.asarray(spec_support), np.asarray(theta, dtype=np.float64),
                                          np.asarray(lane_spec))
    return names, LaneRows(table, np.asarray(theta, dtype=np.float64), log_mgf, ref_mean,
                           np.asarray(target, dtype=np.int64)), p0


def _variance_inflation(llr: np.ndarray, block: int, horizon: float) -> float:
    """Long-run over i.i.d. variance of ``llr``, by overlapping batch means.

    Batches of ``block * m`` events for ``m = 1, 2, 4, ...`` up to the lane's
    memory ``horizon`` (and an eighth of the reference). Each estimate is
    discounted by one standard error, so an i.i.d. column keeps 1.0.
    """
    return float(_variance_inflations(llr[:, None], block, np.asarray([horizon]))[0])


def _variance_inflations(llr: np.ndarray, block: int, horizons: np.ndarray) -> np.ndarray:
    """:func:`_variance_inflation` of every column of ``llr`` (events x lanes) at once."""
    n, lanes = llr.shape
    phi = np.ones(lanes)
    if n < 8 * block:
        return phi
    centred = llr - llr.mean(axis=0)
    var = np.mean(centred**2, axis=0)
    live = var > 1e-12 * np.mean(llr**2, axis=0)
    if not live.any():
        return phi
    csum = np.concatenate([np.zeros((1, lanes)), np.cumsum(centred, axis=0)])
    reach = np.maximum(horizons, block)
    size = block
    safe_var = np.where(live, var, 1.0)
    while size <= n // 8 and size <= reach.max():
        sums = csum[size:] - csum[:-size]
        ratio = np.mean(sums**2, axis=0) / (size * safe_var)
        dof = 1.5 * n / size
        use = live & (size <= reach)
        phi = np.where(use, np.maximum(phi, ratio / (1.0 + np.sqrt(2.0 / dof))), phi)
        size *= 2
    return phi


def calibrate(
    names: list[str],
    rows: LaneRows | None,
    p0: np.ndarray,
    ref_codes: np.ndarray,
    log_arl0: float,
    block: int,
) -> LaneTable | None:
    """Thresholds for the lanes of one column; lanes that cannot be calibrated are dropped."""
    if rows is None or not len(rows):
        return None
    table = rows.table  # codes x lanes
    n = max(len(ref_codes), 1)
    mu = p0 @ table
    sd = np.sqrt(np.maximum(p0 @ table**2 - mu**2, 0.0))
    usable = (mu < 0.0) & (sd > 0.0)
    horizon = 2.0 * log_arl0 / np.where(usable, -mu, 1.0)
    phi = np.ones(len(rows))
    step = max(1, _CELLS // max(len(ref_codes), 1))  # lanes at a time, so events x lanes stays small
    for j in range(0, len(rows) if len(ref_codes) >= 8 * block else 0, step):  # fewer: no batch means
        phi[j:j + step] = _variance_inflations(table[ref_codes, j:j + step], block, horizon[j:j + step])
    pessimistic = mu + sd * np.sqrt(phi / n)
    # a lane whose alternative the reference is too small to tell from noise is dropped
    usable &= pessimistic <= 0.25 * mu
    keep = np.flatnonzero(usable)
    if not len(keep):
        return None
    kappa = mu[keep] / pessimistic[keep]
    return LaneTable(
        detectors=tuple(names[j] for j in keep.tolist()),
        table=np.ascontiguousarray(table[:, keep]),
        thresholds=log_arl0 * phi[keep] * kappa,
        theta=rows.theta[keep],
        log_mgf=rows.log_mgf[keep],
        ref_mean=rows.ref_mean[keep],
        target=rows.target[keep],
    )
