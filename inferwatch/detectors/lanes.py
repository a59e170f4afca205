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
``shape``          indicator of each bin (up; stronger on the    drift
                   bins the reference never filled)
``mix``            indicator of each label (both signs)          drift
``new_category``   indicator of "unseen label" (up)              data_quality
``missing``        indicator of "missing" (both signs)           data_quality
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
from functools import lru_cache

import numpy as np

from .coding import CategoricalCodebook, Codebook, NumericCodebook, clustered_novelty
from .kernels import bin_scores, lane_thresholds, tilt_table
from .types import CategoricalArray, Column, NumericArray

__all__ = ["LaneTable", "LaneRows", "DETECTOR_KIND", "build_lanes", "calibrate", "as_if_live"]

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
    "mix": (-3.0, -1.0, -0.4, 0.4, 1.0, 2.0),
    "new_category": (3.0, 6.0, 9.0),
    "missing": (-2.5, -1.0, -0.5, 1.0, 2.0, 3.5, 6.0),
}
# the tilts of a bin the reference never filled (below its least value, above its largest, between distinct
# values): each such value is strong evidence, and a few percent of them (a sentinel, a unit slip, a retry
# storm logged at 50) is found in about the information's time only by a tilt as strong as log(share / p0)
EMPTY_BIN_TILTS = (4.0, 7.0)
# beyond the reference's range, also the tilt of a unit slip on all the traffic: about log(1 / p0) per value
# (about 10 nats for a reference of 20,000 events); the tilt of 7 took 4 values where the information took 2
BEYOND_TILTS = (10.0,)
TAIL_KEPT = 0.25  # the least share of a categorical's tail mass that Good-Turing's discount leaves it
# beyond the reference's least and largest values a sample's extremes leave a share of about Exp(1)/n: the
# tilt of 4 on an empty bin's 0.5/n drifted up past 6.7/n (a long stream of a heavy-tailed column paged);
# that lane is normalised on 3/n (the 95 % bound of a zero count), the bins' other lanes keep p0
BEYOND_ZERO_COUNT = 3.0
BEYOND_FOLDS = 2  # the reference's parts whose ranges the others' values are measured beyond (see as_if_live)
RUN_LONGEST = 512  # a run beyond the other part's range longer than this: the parts differ (a trend), no session
RUN_GAP = 64  # values beyond the range at most this many events apart are one run (a session, interleaved)
CLUSTERED_RUN = 2.0  # a column whose values beyond the range come in runs this long on average: in sessions
RUN_MARGIN = 3.0  # ... whose lanes there are at least this many times a run's evidence (a few runs seen, many to come)


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
    live_codes: np.ndarray | None = None,
) -> tuple[list[str], LaneRows | None, np.ndarray]:
    """Uncalibrated lanes for a column: (detector names, their rows, smoothed p0); every tilt at once.
    ``live_codes`` (see :func:`as_if_live`) say how long a numeric column's runs of values beyond its range
    last: the bound of such a share grows with them (a sample of sessions holds fewer independent values)."""
    n_codes = book.n_codes
    counts = np.bincount(ref_codes, minlength=n_codes).astype(np.float64)
    n = max(len(ref_codes), 1)
    p0 = (counts + 0.5) / (n + 0.5 * n_codes)
    if isinstance(book, CategoricalCodebook) and not book.open_vocabulary and book.unseen_share > 0:
        # labels the reference never saw arrive at about the share of labels it saw once (Good-Turing), and
        # that share comes out of its rare labels, which the reference over-counts: each tail group's own
        # labels seen once (a group of frequent labels keeps its share), or all groups alike
        tail = slice(book.other_code, book.other_code + book.groups)
        # (a share of the present values: of all events, a sparse column's missing ones aside)
        tail_mass, unseen = p0[tail].sum(), book.unseen_share * (n - counts[book.missing_code]) / n
        once = _seen_once(book, n - counts[book.missing_code])
        if once is not None and once[0].sum() > 0:  # (Good-Turing: a label seen once is worth 2 N2 / N1 of a count)
            given = once[0] * (1.0 - min(2.0 * once[1].sum() / once[0].sum(), 1.0)) / (n + 0.5 * n_codes)
            p0[tail] = np.maximum(p0[tail] - given, TAIL_KEPT * p0[tail])
        elif tail_mass > 0:
            p0[tail] *= max(tail_mass - unseen, TAIL_KEPT * tail_mass) / tail_mass
        # the new labels' share is the estimate itself; the other codes share the rest
        p0[book.unseen_code] = unseen = min(max(p0[book.unseen_code], unseen), 1.0 - 1e-3)
        others = np.ones(n_codes, dtype=bool)
        others[book.unseen_code] = False
        p0[others] *= (1.0 - unseen) / p0[others].sum()
    tilts = tuple(sorted((name, tuple(float(t) for t in values)) for name, values in (thetas or {}).items()))
    layout = _layout(n_codes, _blocks(book, counts, detectors), tilts)
    if layout is None:
        return [], None, p0
    directions = layout.directions
    if layout.filled:  # the mean and scale lanes' directions: the bins' normal scores and their squares
        directions = directions.copy()
        scores = bin_scores(p0[:-1])
        for row, which in layout.filled:
            directions[row, :-1] = scores[which]
    table, log_mgf, ref_mean = tilt_table(p0, directions, layout.supports, layout.spec_support, layout.theta,
                                          layout.lane_spec)
    middle, strong = _beyond_lanes(book, counts, layout)
    run = _mean_run(live_codes, _empty_ends(counts)) if live_codes is not None and strong.any() else 1.0
    run = run if run >= CLUSTERED_RUN else 1.0  # (isolated values, now and then two close: i.i.d.)
    # the tilt of 4 normalised on the bound of a zero count, those of 7 and 10 on p0: a supermartingale under
    # p0 still; where such values come in runs of ``run`` (sessions), each bound ``run`` times higher
    for lanes, count in ((middle, BEYOND_ZERO_COUNT), (strong & ~middle, 0.0)):
        bound = max(count, 0.5) * run / n
        if not lanes.any() or (count == 0.0 and run <= 1.0):
            continue
        sure = p0.copy()
        sure[[0, n_codes - 2]] = np.maximum(p0[[0, n_codes - 2]], bound)
        t2, m2, r2 = tilt_table(sure / sure.sum(), directions, layout.supports, layout.spec_support, layout.theta,
                                layout.lane_spec)
        table[:, lanes], log_mgf[lanes], ref_mean[lanes] = t2[:, lanes], m2[lanes], r2[lanes]
    return list(layout.names), LaneRows(table, layout.theta, log_mgf, ref_mean, layout.target), p0


def _beyond_lanes(book: Codebook, counts: np.ndarray, layout: _Layout) -> tuple[np.ndarray, np.ndarray]:
    """The strong ``shape`` lanes (tilts 4 and up) on a numeric column's empty bins beyond its reference's
    range, and among them those of the middle tilt (4), normalised on the bound of a zero count; the others
    stay on p0 (the tilt of 7 drifts up only past 78/n, and on 3/n a unit slip on part of the traffic took 1.5x
    longer); the weak one there stays on p0 too (the reference cannot calibrate it: it is dropped)."""
    if not isinstance(book, NumericCodebook):
        none = np.zeros(len(layout.names), dtype=bool)
        return none, none
    strong = ((np.asarray(layout.names) == "shape") & np.isin(layout.target, _empty_ends(counts))
              & (layout.theta >= min(EMPTY_BIN_TILTS)))
    return strong & (layout.theta < max(EMPTY_BIN_TILTS)), strong


def as_if_live(book: Codebook, column: Column, codes: np.ndarray) -> np.ndarray | None:
    """The reference's codes as a live stream after part of it would code them, where that differs; else
    None. A categorical column whose new labels come clustered (see
    :func:`~inferwatch.detectors.coding.clustered_novelty`): the labels of its second half that its first
    half never saw are coded "unseen". A numeric column: for each half of it, the other half's values
    beyond its range are coded beyond the reference's range (the two copies end to end), so the lanes there
    learn how such values come (alone in an i.i.d. column; a whole session of near-equal values in a log of
    sessions).

    >>> labels = [x for k in range(40) for x in ["a"] * 30 + [f"u{k}"] * 10]  # a user's session now and then
    >>> column = CategoricalArray.from_labels(labels)
    >>> book = CategoricalCodebook.from_reference(column)
    >>> live = as_if_live(book, column, book.encode(column))
    >>> int((live[:800] == book.unseen_code).sum()), int((live[800:] == book.unseen_code).sum())
    (0, 200)
    >>> values = np.repeat(np.random.default_rng(0).normal(size=400), 10)  # 400 sessions of ten equal values
    >>> numbers = NumericArray(values)
    >>> book = NumericCodebook.from_reference(values)
    >>> live = as_if_live(book, numbers, book.encode(numbers))
    >>> len(live), int(np.isin(live, (0, book.n_codes - 2)).sum() % 10)  # whole sessions beyond a half's range
    (8000, 0)
    """
    if isinstance(book, NumericCodebook) and isinstance(column, NumericArray):
        return _beyond_folds(book, column.values, codes)
    if not isinstance(book, CategoricalCodebook) or not isinstance(column, CategoricalArray):
        return None
    if book.open_vocabulary or clustered_novelty(column.codes) is None:
        return None  # (an i.i.d. column: its reference's codes tell how its new labels come)
    half = len(column.codes) // 2
    seen = np.zeros(len(column.categories) + 1, dtype=bool)
    seen[column.codes[:half]] = True
    seen[-1] = True  # (a missing value, code -1, is not a label)
    novel = ~seen[column.codes]
    novel[:half] = False
    out = np.array(codes, copy=True)
    out[novel] = book.unseen_code
    return out


def _beyond_folds(book: NumericCodebook, values: np.ndarray, codes: np.ndarray) -> np.ndarray | None:
    """A numeric reference's codes, once per half of it, with the other half's values beyond that half's range
    coded beyond the whole reference's (below: code 0, above: the last present code), where the reference left
    that bin empty; the two end to end. Runs of such values longer than ``RUN_LONGEST`` events keep their
    codes: the halves' ranges differ there (a trend, a cycle longer than the reference), which says nothing
    of how extremes come. None if no value is so coded."""
    folds = np.array_split(np.arange(len(values)), BEYOND_FOLDS)
    ends = _empty_ends(np.bincount(codes, minlength=book.n_codes))
    if len(values) < 200 * BEYOND_FOLDS or len(book.edges) < 2 or not ends:
        return None
    out = []
    for fold in folds:
        mine = values[fold]
        mine = mine[~np.isnan(mine)]
        if not mine.size:
            return None
        coded = np.array(codes, copy=True)
        others = np.ones(len(values), dtype=bool)
        others[fold] = False
        if 0 in ends:
            coded[others & (values < mine.min())] = 0
        if book.n_codes - 2 in ends:
            coded[others & (values > mine.max())] = book.n_codes - 2
        for first, stop in _runs(np.flatnonzero(np.isin(coded, ends))):
            if stop - first > RUN_LONGEST:
                coded[first:stop] = codes[first:stop]
        out.append(coded)
    joined = np.concatenate(out)
    return joined if np.isin(joined, ends).any() else None


def _empty_ends(counts: np.ndarray) -> list[int]:
    """The codes below and above a numeric column's range (its first, and the last before missing) that the
    reference's ``counts`` (one per code) leave empty."""
    return [code for code in (0, len(counts) - 2) if counts[code] == 0]


def _runs(at: np.ndarray) -> list[tuple[int, int]]:
    """(first, last + 1) of each run of positions ``at`` (sorted) at most ``RUN_GAP`` apart, of two or more."""
    if len(at) < 2:
        return []
    breaks = np.flatnonzero(np.diff(at) > RUN_GAP)
    starts, stops = np.r_[0, breaks + 1], np.r_[breaks, len(at) - 1]
    return [(int(at[a]), int(at[b]) + 1) for a, b in zip(starts, stops) if b > a]


def _mean_run(codes: np.ndarray, ends: list[int]) -> float:
    """How many values a run of ``codes`` in ``ends`` holds on average (one alone is a run; 1 without any)."""
    at = np.flatnonzero(np.isin(codes, ends))
    return len(at) / (1 + int(np.count_nonzero(np.diff(at) > RUN_GAP))) if len(at) else 1.0


def _run_evidence(llr: np.ndarray) -> float:
    """The highest a CUSUM from 0 reaches over ``llr``: its sums less their least (0 included) so far.

    >>> _run_evidence(np.array([2.0, -1.0, 3.0, -5.0, 1.0]))
    4.0
    """
    sums = np.cumsum(llr)
    return float(max((sums - np.minimum.accumulate(np.minimum(sums, 0.0))).max(initial=0.0), 0.0))


def _seen_once(book: CategoricalCodebook, present: float) -> np.ndarray | None:
    """Per tail group, the counts of its labels the reference saw once, then twice (None without the
    labels' shares)."""
    if not book.tail_shares or present < 1:
        return None
    seen = np.zeros((2, book.groups))
    for label, share in book.tail_shares.items():
        times = round(share * present)
        if times <= 2:
            seen[times - 1, book.group_of(label) - book.other_code] += 1.0
    return seen


def _blocks(book: Codebook, counts: np.ndarray, detectors: tuple[str, ...]) -> tuple:
    """The lanes a column gets, as a key: (detector, the codes it points at (-1: none), the codes it lives on)
    per block; the support is "all", "present" (all but missing) or a mask."""
    blocks: list[tuple] = []  # (detector, targets, support[, its own tilts])
    if isinstance(book, NumericCodebook):
        n_present = book.n_codes - 1
        if n_present >= 2 and "mean" in detectors:
            blocks.append(("mean", (-1,), "present"))
        if n_present >= 3 and "scale" in detectors:
            blocks.append(("scale", (-1,), "present"))
        if n_present >= 3 and "shape" in detectors:
            blocks.append(("shape", tuple(range(n_present)), "present"))
            empty = [int(k) for k in np.flatnonzero(counts[:n_present] == 0)]
            if empty:
                blocks.append(("shape", tuple(empty), "present", EMPTY_BIN_TILTS))
            ends = tuple(_empty_ends(counts))
            if ends:
                blocks.append(("shape", ends, "present", BEYOND_TILTS))
    else:
        assert isinstance(book, CategoricalCodebook)
        mix_support = np.zeros(book.n_codes, dtype=bool)
        mix_support[: len(book.top)] = True
        groups = slice(book.other_code, book.other_code + book.groups)
        mix_support[groups] = (counts[groups] > 0) | book.open_vocabulary
        if "mix" in detectors and mix_support.sum() >= 2:
            blocks.append(("mix", tuple(np.flatnonzero(mix_support).tolist()), mix_support.tobytes()))
        if "new_category" in detectors and not book.open_vocabulary:
            blocks.append(("new_category", (book.unseen_code,), "all"))
    if "missing" in detectors:
        blocks.append(("missing", (book.missing_code,), "all"))
    return tuple(blocks)


@dataclass(frozen=True)
class _Layout:
    """Where each lane of a column sits: one spec (a direction over codes, on a support) per target of a
    block, one lane per tilt of a spec. ``filled`` lists the spec rows whose direction depends on p0."""

    names: tuple[str, ...]
    directions: np.ndarray
    supports: np.ndarray
    spec_support: np.ndarray
    lane_spec: np.ndarray
    theta: np.ndarray
    target: np.ndarray
    filled: tuple[tuple[int, int], ...]


@lru_cache(maxsize=128)  # an entry holds its specs' directions: up to ~1 MB for a column of 256 categories
def _layout(n_codes: int, blocks: tuple, thetas: tuple) -> _Layout | None:
    """The lane layout of a column's blocks (see :func:`_blocks`); columns of one shape share it.
    ``DEFAULT_THETAS`` is read once per shape: it is a constant."""
    if not blocks:
        return None
    tilts_of = {**DEFAULT_THETAS, **dict(thetas)}
    present = np.ones(n_codes, dtype=bool)
    present[-1] = False  # a numeric column's missing code is its last
    names: list[str] = []
    rows: list[np.ndarray] = []
    supports: list[np.ndarray] = []
    spec_support: list[int] = []
    lane_spec: list[int] = []
    theta: list[float] = []
    target: list[int] = []
    filled: list[tuple[int, int]] = []
    for b, (det, points, support, *own) in enumerate(blocks):
        tilts = own[0] if own else tilts_of[det]
        supports.append(present if support == "present" else np.ones(n_codes, dtype=bool) if support == "all"
                        else np.frombuffer(support, dtype=bool))
        for code in points:
            if code < 0:
                filled.append((len(rows), 0 if det == "mean" else 1))
            direction = np.zeros(n_codes)
            if code >= 0:
                direction[code] = 1.0
            lane_spec += [len(rows)] * len(tilts)
            rows.append(direction)
            spec_support.append(b)
            target += [code] * len(tilts)
            theta += list(tilts)
            names += [det] * len(tilts)
    # shared by every column of this shape: read, never written
    return _Layout(tuple(names), np.vstack(rows), np.vstack(supports), np.asarray(spec_support),
                   np.asarray(lane_spec), np.asarray(theta, dtype=np.float64), np.asarray(target, dtype=np.int64),
                   tuple(filled))


def calibrate(
    names: list[str],
    rows: LaneRows | None,
    p0: np.ndarray,
    ref_codes: np.ndarray,
    log_arl0: float,
    block: int,
    live_codes: np.ndarray | None = None,
) -> LaneTable | None:
    """Thresholds for the lanes of one column; lanes that cannot be calibrated are dropped. ``live_codes``:
    the reference's codes as a live stream would code them (see :func:`as_if_live`), since the reference's
    own codes never hold a new label or a value beyond its range and cannot show how such events come (in
    runs, with sessions). The ``new_category`` lanes take the higher of the thresholds the two give. Where
    values beyond a numeric range come in runs (values at most ``RUN_GAP`` events apart, ``CLUSTERED_RUN``
    of them or more on average), the lanes there take the higher of the thresholds the two codings give, and
    are at least ``RUN_MARGIN`` times the evidence they reach over the longest run, the higher of the two
    sides' for a tilt (how long a run of extreme values lasts is the column's, not a side's); isolated
    values, as in an i.i.d. column, leave them as they were."""
    if rows is None or not len(rows):
        return None
    table = rows.table  # codes x lanes
    thresholds = lane_thresholds(table, p0, ref_codes, log_arl0, block)
    if live_codes is not None:
        names_ = np.asarray(names)
        new = np.flatnonzero(names_ == "new_category")
        if len(new):
            live = lane_thresholds(np.ascontiguousarray(table[:, new]), p0, live_codes, log_arl0, block)
            thresholds[new] = np.fmax(thresholds[new], live)
        ends = _empty_ends(np.bincount(ref_codes, minlength=table.shape[0]))  # (numeric: beyond the range)
        beyond = (names_ == "shape") & np.isin(rows.target, ends)
        if beyond.any() and _mean_run(live_codes, ends) >= CLUSTERED_RUN:
            pointed = np.flatnonzero(beyond)  # as the lanes run over them, and the longest run, with room
            live = lane_thresholds(np.ascontiguousarray(table[:, pointed]), p0, live_codes, log_arl0, block)
            thresholds[pointed] = np.fmax(thresholds[pointed], live)
            runs = _runs(np.flatnonzero(np.isin(live_codes, ends)))
            for tilt in np.unique(rows.theta[beyond]):
                same = np.flatnonzero(beyond & (rows.theta == tilt) & ~np.isnan(thresholds))
                reached = max((_run_evidence(table[live_codes[a:b], j]) for j in same for a, b in runs), default=0.0)
                thresholds[same] = max(thresholds[same].max(initial=-np.inf), RUN_MARGIN * reached)
    keep = np.flatnonzero(~np.isnan(thresholds))
    if not len(keep):
        return None
    return LaneTable(
        detectors=tuple(map(names.__getitem__, keep.tolist())),
        table=np.ascontiguousarray(table[:, keep]),
        thresholds=thresholds[keep],
        theta=rows.theta[keep],
        log_mgf=rows.log_mgf[keep],
        ref_mean=rows.ref_mean[keep],
        target=rows.target[keep],
    )
