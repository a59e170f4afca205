"""The monitor: reference, statistics, detectors and alert policy per model.

``Monitor.process(batch)`` takes a decoded micro-batch of one model and
returns its alerts; state lives in the object and round-trips through
``to_bytes``/``from_bytes`` (msgpack plus the sketches' own byte format,
never pickle). The baseline comes from ``fit_reference`` or, without one,
from the first ``warmup_events`` events of each model. Given the batch's
rule violations (``BatchGuard.violations``), it also watches each rule's
violation rate (``inferwatch.detectors.rule_rates``) from the model's first event.

>>> import numpy as np
>>> from inferwatch.detectors.types import Batch, NumericArray
>>> rng = np.random.default_rng(7)
>>> def batch(values, start):
...     n = len(values)
...     ids = np.array([f"e{start + i}" for i in range(n)], dtype=object)
...     return Batch("m", ids, np.arange(start, start + n, dtype=float), {"x": NumericArray(values)})
>>> mon = Monitor(MonitorConfig())
>>> mon.fit_reference(batch(rng.normal(size=20_000), 0))
>>> mon.process(batch(rng.normal(size=20_000), 0))
[]
>>> alerts = mon.process(batch(rng.normal(size=5_000) + 1.0, 20_000))
>>> first = alerts[0]
>>> (first.feature, first.detector, first.status, first.row < 100)
('x', 'mean', 'firing', True)
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, cast

import msgspec
import numpy as np

from ..errors import ConfigError, StateError
from .alerts import AlertPolicy, Finding
from .coding import CategoricalCodebook, Codebook, NumericCodebook, codebook_from_dict, label_hashes
from .config import ModelConfig, MonitorConfig
from .cusum import BlockCusum, LaneState, Transition
from .kernels import text_hashes
from .lanes import DETECTOR_KIND, EMPTY_BIN_TILTS, LaneTable, as_if_live, build_lanes, calibrate
from .roles import (
    DECIMALS_LABELS,
    REPEAT_LABELS,
    REPEAT_WINDOW,
    ages,
    code_labels,
    decimals,
    infer_role,
    repeat_flags,
    repeats,
    text_lengths,
    text_numbers,
    time_scale,
)
from .rule_rates import RuleRates
from .stats import CategoricalStats, NumericStats, stats_from_dict
from .type_changes import TypeChanges
from .types import Alert, Batch, CategoricalArray, Column, NumericArray, TextArray

__all__ = ["Monitor", "ModelMonitor", "ColumnMonitor", "STATE_VERSION", "concat_columns", "concat_batches"]

# role -> its derived column
_DERIVED_BY = {"text": "length", "numeric_text": "value", "timestamp": "age", "code": "code"}
STATE_VERSION = 7  # 2 lanes as bytes, 3 fixed parts encoded once, 4 roles, 5 tail groups, 6 segments, 7 per model
BLOCK_BEFORE_SAVED = 32  # the block size of a model saved before states kept theirs (the default then)


def _event_repeats(ids: TextArray, recent: np.ndarray) -> tuple[CategoricalArray, np.ndarray]:
    """Per event, whether its ``event_id`` is among the last ``REPEAT_WINDOW`` (see :func:`repeats`). The
    hashes are cut to 32 bits (the window is saved with every batch: 16 KB, not 32): two ids of one window
    then share a hash about once in a million events, far under any repeat share a baseline can tell."""
    hashes = text_hashes(ids.data, ids.offsets) & np.uint64(0xFFFFFFFF)
    return repeat_flags(hashes, np.ones(len(ids), dtype=bool), recent)


def _ids_tell(flags: CategoricalArray) -> bool:
    """Whether ids' repeat flags can be a baseline: ids that all repeat (none at all: the stream's own
    pseudo-model) say nothing."""
    return not flags.codes[1:].all()


def _kind(column: Column) -> str:
    return "numeric" if isinstance(column, NumericArray) else "categorical"


def _empty_like(kind: str, n: int) -> Column:
    if kind == "numeric":
        return NumericArray(np.full(n, np.nan))
    return CategoricalArray(np.full(n, -1, dtype=np.int64), ())


def concat_columns(parts: list[Column]) -> Column:
    """Concatenate columns of one kind; categorical labels are unified."""
    if isinstance(parts[0], NumericArray):
        numeric = cast(list[NumericArray], parts)  # one kind, as documented
        return NumericArray(np.concatenate([p.values for p in numeric]))
    categorical = cast(list[CategoricalArray], parts)
    labels = sorted({c for p in categorical for c in p.categories})
    index = {c: i for i, c in enumerate(labels)}
    codes = []
    for p in categorical:
        remap = np.array([index[c] for c in p.categories] + [-1], dtype=np.int64)
        codes.append(remap[p.codes])
    return CategoricalArray(np.concatenate(codes), tuple(labels))


@dataclass
class ColumnMonitor:
    """Codebook, lanes, lane state and statistics of one column."""

    name: str
    book: Codebook
    lanes: LaneTable | None
    state: LaneState | None
    stats: NumericStats | CategoricalStats
    block: int
    resolve_fraction: float

    def __post_init__(self) -> None:
        self.engine = BlockCusum(self.lanes, self.block, self.resolve_fraction) if self.lanes else None
        self._fixed: bytes | None = None  # the codebook and lanes, encoded (see to_dict)
        self._digest = ""  # of _fixed
        self.group_names: dict[int, str] = {}  # "other known" group -> the label that rose most when it fired
        self.context: dict[int, dict] = {}  # lane -> the events at its last firing row (see _context)
        self.tail = np.empty(0)  # the column's last present values (numeric), carried between batches
        self.code_tail = np.empty(0, dtype=np.int64)  # its last ``CODE_TAIL`` codes, for the shares in the words
        self.unseen_tail: list[str] = []  # its latest labels never seen in the reference (categorical)
        self.unseen_at: list[int] = []  # the model event of each
        self.hash_tail = np.empty(0, dtype=np.uint32)  # its last labels' hashes, beside code_tail (grouped columns)
        self.ref_run = 0  # the longest run of one value in its baseline (numeric): a longer one now is "stuck"

    @property
    def kind(self) -> str:
        return self.book.kind

    def observe(self, column: Column | None, n: int, start: int) -> list[Transition]:
        if column is None:
            column = _empty_like(self.kind, n)
        expected = NumericArray if self.kind == "numeric" else CategoricalArray
        if not isinstance(column, expected):
            raise TypeError(f"column {self.name!r} is {self.kind} but the batch holds {type(column).__name__}")
        codes, counts, moments = self.book.encode_counted(column, start % self.block, self.block)
        if isinstance(self.stats, NumericStats):
            assert isinstance(column, NumericArray)  # stats, codebook and column are of one kind
            self.stats.update(column, start, moments)
        else:
            assert isinstance(column, CategoricalArray) and isinstance(self.book, CategoricalCodebook)
            per_label = moments
            unseen = int(counts[:, self.book.unseen_code].sum(dtype=np.float64)) if not self.book.open_vocabulary else 0
            self.stats.update(column, unseen, per_label)
        if self.engine is None:
            return []
        assert self.state is not None  # a column with lanes has their state
        found = self.engine.advance(self.state, codes, start, counts)
        if found and isinstance(column, CategoricalArray) and isinstance(self.book, CategoricalCodebook):
            self._name_groups(column, codes, moments, found)
        for t in found:
            if t.action == "fire":
                self.context[t.lane] = self._context(column, codes, t, start)
        self._carry(column, codes, start)
        return found

    def _context(self, column: Column, codes: np.ndarray, t: Transition, start: int) -> dict:
        """What the events at and just before a firing row looked like: the median of the last present
        values (the latest third of the detector's run, at least 8 and at most ``TAIL``), or the latest labels
        never seen before; and, for a lane on one code, that code's share since the run's most likely change
        point. Earlier batches' events count too, so the words do not depend on where batches were cut."""
        out = self._share_since_change(codes, t)
        out.update(self._values_context(column, codes, t, start))
        moved = self._run_median(t, np.concatenate([self.code_tail, codes[: t.row + 1]])[-CODE_TAIL:])
        if moved is not None:
            out["median"] = moved
        return out

    def _run_median(self, t: Transition, latest: np.ndarray) -> float | None:
        """A ``mean`` lane's run longer than the codes carried (a weak change, found after thousands of
        events): the reference median moved by the lane's estimate over the whole run, in the column's units
        (near the median a normal score is the interquartile range over 1.349). The last values alone would
        say the excursion that made the crossing: for a shift of 0.05 SD, a median moved by 0.12 to 0.27 SD.
        A missing value adds nothing to the lane: the run's present share (that of its ``latest`` codes) counts."""
        lanes, book = self.lanes, self.book
        if (lanes is None or not isinstance(book, NumericCodebook) or t.run_length <= CODE_TAIL
                or t.lane >= lanes.table.shape[1] or lanes.detectors[t.lane] != "mean"):
            return None
        j = t.lane
        present = float(np.mean(latest < book.missing_code)) if latest.size else 0.0
        if present <= 0.0:
            return None
        shift = (t.score / (t.run_length * present) + lanes.log_mgf[j]) / lanes.theta[j] - lanes.ref_mean[j]
        iqr = book.quartiles[1] - book.quartiles[0]
        if not (iqr > 0 and book.median == book.median):
            return None
        return float(book.median + shift * iqr / 1.349)

    def _share_since_change(self, codes: np.ndarray, t: Transition) -> dict:
        """``{"share", "events"}``: the share of the lane's code among the events since the run's most likely
        change point (on the lane's support), when the run is at most ``CODE_TAIL`` events long (the codes of
        earlier batches are carried: the same words wherever batches were cut); else nothing (the words then
        fall back on the lane's estimate over its run)."""
        lanes = self.lanes
        if lanes is None or t.lane >= lanes.table.shape[1] or int(lanes.target[t.lane]) < 0:
            return {}
        run = max(t.run_length, 1)
        if run > CODE_TAIL:
            return {}
        run_codes = np.concatenate([self.code_tail, codes[: t.row + 1]])[-run:]
        part = run_codes[_change_point(lanes.table[run_codes, t.lane]):]
        on = part[lanes.table[part, t.lane] != 0.0]  # the lane's support (all codes, or the labels it knows)
        if on.size < SHARE_LEAST:
            return {}
        return {"share": float(np.mean(on == int(lanes.target[t.lane]))), "events": int(part.size)}

    def _values_context(self, column: Column, codes: np.ndarray, t: Transition, start: int) -> dict:
        if isinstance(column, NumericArray):
            beyond = {**self._beyond_context(column, t), **self._stuck_context(column, t)}
            binned = self._binned_context(codes, t)
            if binned:
                return {**binned, **beyond}
            upto = column.values[: t.row + 1]
            # the run's part in batches before (present values: with missing ones the run reaches back less far)
            before = self.tail[max(len(self.tail) - max(t.run_length - t.row - 1, 0), 0):]
            if self.lanes is not None and t.lane < self.lanes.table.shape[1] and len(before) + t.row + 1 >= \
                    t.run_length:  # the values since the most likely change point in the run
                values = np.concatenate([before, upto])[-max(t.run_length, 1):]
                run_codes = np.concatenate([self.book.encode(NumericArray(before)), codes[: t.row + 1]])
                since = _change_point(self.lanes.table[run_codes[-len(values):], t.lane])
                recent = values[since:][~np.isnan(values[since:])][-TAIL:]
                if recent.size:
                    return {"median": float(np.median(recent)), **beyond}
            # the latest third of the detector's run (at least 8 values): a run often starts before the change,
            # its end is past it
            k = min(max(t.run_length // 3 + 1, 8), max(t.run_length, 1), TAIL)
            recent = np.concatenate([self.tail, upto[~np.isnan(upto)]])[-k:]
            return {**({"median": float(np.median(recent))} if recent.size else {}), **beyond}
        return {"examples": [label for label, _ in self._unseen_latest(column, codes[: t.row + 1], start,
                                                                        start + t.row + 1 - max(t.run_length, 1))]}

    def _beyond_context(self, column: NumericArray, t: Transition) -> dict:
        """``{"beyond": geometric mean}`` of the latest positive values (of the last ``TAIL`` present ones,
        earlier batches' carried) in the bin beyond the reference's range that a ``shape`` lane points at: a
        unit slip on part of the traffic leaves the column's median where it was, those values say the factor;
        ``"bulk"``: their share of the run's last values (most: the whole column moved, the median says)."""
        book, lanes = self.book, self.lanes
        if not isinstance(book, NumericCodebook) or lanes is None or t.lane >= lanes.table.shape[1]:
            return {}
        target = int(lanes.target[t.lane])
        if lanes.detectors[t.lane] != "shape" or target not in (0, len(book.edges)):
            return {}
        upto = column.values[: t.row + 1]
        recent = np.concatenate([self.tail, upto[~np.isnan(upto)]])[-TAIL:]
        inside = recent < book.edges[0] if target == 0 else recent >= book.edges[-1]
        there = recent[inside & (recent > 0)]  # (their geometric mean: a factor is read on a log scale)
        if not there.size:
            return {}
        bulk = float(np.mean(inside[-min(max(t.run_length, 1), TAIL):]))  # their share of the run's last values
        return {"beyond": float(np.exp(np.mean(np.log(there)))), "bulk": bulk}

    def _stuck_context(self, column: NumericArray, t: Transition) -> dict:
        """``{"stuck": value, "stuck_for": n}`` when the column's last ``n`` present values (earlier batches'
        carried, at most ``TAIL``) are all one value, ``n`` at least ``STUCK_LEAST`` and twice the baseline's
        longest run of one value (a per-session value comes in runs), in a bin that held less than
        ``STUCK_BIN`` of the baseline (not a count's usual 0): a model or a feed stuck on a constant."""
        lanes = self.lanes
        if not isinstance(self.book, NumericCodebook) or lanes is None:
            return {}
        upto = column.values[: t.row + 1]
        recent = np.concatenate([self.tail, upto[~np.isnan(upto)]])[-TAIL:]
        if recent.size < STUCK_LEAST:
            return {}
        same = recent == recent[-1]
        streak = recent.size if same.all() else recent.size - 1 - int(np.flatnonzero(~same)[-1])
        code = int(self.book.encode(NumericArray(recent[-1:]))[0])
        bins = np.flatnonzero((np.asarray(lanes.detectors) == "shape") & (lanes.target == code))
        if streak < max(STUCK_LEAST, 2 * self.ref_run + 1) or not bins.size or lanes.ref_mean[bins[0]] >= STUCK_BIN:
            return {}
        return {"stuck": float(recent[-1]), "stuck_for": int(streak)}

    def _binned_context(self, codes: np.ndarray, t: Transition) -> dict:
        """``{"median", "iqr"}`` of the values since the run's most likely change point (its last ``CODE_TAIL``
        events, earlier batches' carried), read within the reference's bins: many more values than the last
        few that made the crossing, so the words are not those of the extremes that crossed first. Empty when
        the bins cannot say (a median in a tail bin or beyond the reference's range: the values tell then)."""
        book, lanes = self.book, self.lanes
        if not isinstance(book, NumericCodebook) or lanes is None or t.lane >= lanes.table.shape[1]:
            return {}
        window = np.concatenate([self.code_tail, codes[: t.row + 1]])[-min(max(t.run_length, 1), CODE_TAIL):]
        part = window[_change_point(lanes.table[window, t.lane]):]
        if np.count_nonzero(part < book.missing_code) < 16:
            return {}
        median = book.quantile_of(part, 0.5)
        if median is None:
            return {}
        q1, q3 = book.quantile_of(part, 0.25), book.quantile_of(part, 0.75)
        return {"median": median, "values": int(np.count_nonzero(part < book.missing_code)),
                **({"iqr": q3 - q1} if q1 is not None and q3 is not None else {})}

    def _unseen_latest(self, column: Column, codes: np.ndarray, start: int, since: int = -1) -> list[tuple[str, int]]:
        """The latest (at most 3) labels never seen in the reference, with the model event each came at, from
        event ``since`` on (a detector's run: not a rare label from long before its change); ``codes`` are the
        batch's from event ``start``, earlier batches' labels are carried."""
        if not isinstance(self.book, CategoricalCodebook) or self.book.open_vocabulary:
            return []
        assert isinstance(column, CategoricalArray)
        first = max(since - start, 0)
        rows = first + np.flatnonzero(codes[first:] == self.book.unseen_code)[::-1][:64]  # latest first
        found = [(column.categories[column.codes[r]], start + r) for r in rows.tolist()]
        found += [(label, at) for label, at in zip(self.unseen_tail, self.unseen_at) if at >= since]
        latest: dict[str, int] = {}
        for label, at in found:  # (latest first)
            latest.setdefault(label, at)
        return list(latest.items())[:3]

    def _carry(self, column: Column, codes: np.ndarray, start: int) -> None:
        """Keep the last present values (numeric) or new labels (categorical), and the last codes, for the next
        batch's words."""
        self.code_tail = np.concatenate([self.code_tail, codes[-CODE_TAIL:]])[-CODE_TAIL:].astype(np.int64)
        if isinstance(column, NumericArray):
            values = column.values
            self.tail = np.concatenate([self.tail, values[~np.isnan(values)][-TAIL:]])[-TAIL:]
        else:
            latest = self._unseen_latest(column, codes, start)
            self.unseen_tail, self.unseen_at = [label for label, _ in latest], [at for _, at in latest]
            if isinstance(self.book, CategoricalCodebook) and self.book.tail_shares:
                assert isinstance(column, CategoricalArray)
                last = label_hashes(column, column.codes[-CODE_TAIL:])
                self.hash_tail = np.concatenate([self.hash_tail, last])[-CODE_TAIL:]

    def _name_groups(self, column: CategoricalArray, codes: np.ndarray, per_label: np.ndarray,
                     found: list[Transition]) -> None:
        """For a transition on an "other known" group: the label of the group that rose most above its
        reference share since the run's most likely change point (or, without the shares, the group's most
        frequent label in this batch)."""
        assert isinstance(self.book, CategoricalCodebook) and self.lanes is not None
        book = self.book
        for t in found:
            code = int(self.lanes.target[t.lane])
            if t.action != "fire" or book.groups == 1 or not book.other_code <= code < book.unseen_code:
                continue
            if book.tail_shares:  # (without them, from a state saved before: the batch's most frequent one)
                named = self._leading_label(column, codes, t, code)
                if named is not None:
                    self.group_names[code] = named
                else:
                    self.group_names.pop(code, None)
                continue
            lookup = book.lookup(column)[:-1]
            members = np.flatnonzero((lookup == code) & (per_label[:-1] > 0))
            if members.size:
                self.group_names[code] = column.categories[int(members[np.argmax(per_label[members])])]

    def _leading_label(self, column: CategoricalArray, codes: np.ndarray, t: Transition, group: int) -> str | None:
        """The group's label with the most Poisson evidence of a move its lane's way (a rise over its
        reference share, or a fall under it), among the run's last events (at most ``CODE_TAIL``, earlier
        batches' carried: the same name wherever batches were cut) since its most likely change point."""
        assert isinstance(self.book, CategoricalCodebook) and self.lanes is not None
        up = self.lanes.theta[t.lane] > 0
        hashes = np.concatenate([self.hash_tail, label_hashes(column, column.codes[: t.row + 1])])
        window = np.concatenate([self.code_tail, codes[: t.row + 1]])
        n = min(max(t.run_length, 1), CODE_TAIL, len(hashes))
        hashes, window = hashes[-n:], window[-n:]
        since = _change_point(self.lanes.table[window, t.lane])
        hashes, window = hashes[since:], window[since:]
        members, counts = np.unique(hashes[window == group], return_counts=True)
        seen = {self.book.tail_label(h): c for h, c in zip(members.tolist(), counts.tolist())}
        best, best_score = None, 0.0
        for label in self.book.tail_members.get(group, []):
            count, expected = seen.get(label, 0), len(window) * self.book.tail_shares[label]
            if (count > expected) == up and count != expected:
                score = (count * math.log(count / expected) if count else 0.0) - (count - expected)
                if score > best_score:
                    best, best_score = label, score
        return best

    def watch(self, column: Column | None, n: int, start: int, at: np.ndarray | None = None,
              segment: tuple[str, str] | None = None) -> list[Finding]:
        """:meth:`observe`, each transition as a finding; ``at`` maps this column's rows to the batch's."""
        out = []
        for t in self.observe(column, n, start):
            message, severity = self.describe(t)
            if segment is not None:
                message = f"[{segment[0]}={segment[1]}] {message}"
            row = t.row if at is None else int(at[t.row])
            context = self.context.get(t.lane, {}) if t.action == "fire" else {}
            factor = _beyond_factor(context, self.book) if "beyond" in context else _factor(context, self.book)
            if factor is None and context.get("bulk", 0.0) >= 0.5:  # most values moved past the range: the
                factor = _factor(context, self.book)  # median's ratio (theirs is biased by where the range ends)
            out.append(Finding(self.name, t.detector, t.action, row, t.score, t.threshold, severity, message,
                               segment=segment, factor=factor, run=t.run_length))
        return out

    def describe(self, t: Transition) -> tuple[str, str]:
        """(message, severity) of a transition."""
        det = t.detector
        if t.action == "clear":
            return (f"{self.name}: {det} is back within reference bounds "
                    f"(evidence {t.score:.1f}, threshold {t.threshold:.1f}).", "info")
        lanes = self.lanes
        assert lanes is not None  # only a column with lanes has transitions
        j = t.lane
        theta, run = lanes.theta[j], max(t.run_length, 1)
        estimate = (t.score / run + lanes.log_mgf[j]) / theta
        ref = lanes.ref_mean[j]
        same = (np.asarray(lanes.detectors) == det) & (np.sign(lanes.theta) == np.sign(theta))  # of its way
        strongest = abs(theta) >= np.max(np.abs(lanes.theta[same])) and not (det == "missing" and theta < 0)
        strongest |= det == "shape" and theta >= max(EMPTY_BIN_TILTS)  # (the tilt of a slip on all is beyond)
        severity = "critical" if strongest else "warning"
        span = f"over the last ~{run} events"
        context = self.context.get(j, {})
        if det == "mean":
            way = "up" if theta > 0 else "down"
            text = f"values moved {way} by about {abs(estimate - ref):.2f} reference SDs (normal scores) {span}"
            units = _in_units(context, self.book)  # (None unless both medians are known)
            moved = context.get("median", math.nan) - getattr(self.book, "median", math.nan)
            if units and moved != 0 and (moved > 0) == (theta > 0):  # a few noisy values may not say the way
                text = f"{units} {span}"
        elif det == "scale":
            way = "widened" if theta > 0 else "narrowed"
            text = f"spread {way} (squared normal scores {estimate - ref:+.2f} SDs from reference) {span}"
            spread = _spread_in_units(context, self.book)
            if spread is not None and (spread[1] > spread[0]) == (theta > 0):
                text = f"spread {way}: interquartile range {_num(spread[0])} -> {_num(spread[1])} {span}"
            factor = _factor(context, self.book)
            if factor is not None and (factor >= 2 or factor <= 0.5):  # a unit change widens it too: say so
                text += f"; {_in_units(context, self.book)}"
            elif _median_moved(context, self.book):  # a shift widens the spread about the old median: say it
                text += f"; {_in_units(context, self.book)}"
        else:
            share, base = min(max(estimate, 0.0), 1.0), ref
            if "share" in context:  # measured since the most likely change point, not averaged over the run
                share, span = context["share"], f"over the last ~{context['events']} events"
            target = self.book.label(int(lanes.target[j]))
            among = (" among the labels the reference saw" if isinstance(self.book, CategoricalCodebook)
                     and self.book.unseen_share > 0 and not self.book.open_vocabulary else "")
            what = {"shape": f"share of values in {target}", "mix": f"share of {target}{among}",
                    "missing": "share of missing values",
                    "new_category": "share of labels never seen in the reference"}[det]
            way = "rose" if share >= base else "fell"
            text = f"{what} {way} from {base:.2%} to about {share:.2%} {span}"
            named = self.group_names.get(int(lanes.target[j])) if det == "mix" else None
            if named is not None:
                text += f" (led by {named!r})"
            ratio = _beyond_ratio(context, self.book) if det == "shape" else None
            if ratio is not None:
                text += f" (about {_num(context['beyond'])} there, {_ratio_words(ratio)} the reference median)"
            examples = context.get("examples")
            if det == "new_category" and examples:
                text += f" (e.g. {', '.join(repr(u) for u in examples)})"
        if "stuck" in context and det in ("mean", "scale", "shape"):
            more = "+" if context["stuck_for"] >= TAIL else ""
            text += f" (stuck at {_num(context['stuck'])}: its last {context['stuck_for']}{more} values)"
        return (f"{self.name}: {text}; evidence {t.score:.1f} crossed threshold {t.threshold:.1f}.", severity)

    def status(self) -> dict:
        out: dict[str, Any] = {"kind": self.kind, "stats": self.stats.summary(), "detectors": {}}
        for det, j in self._strongest().items():
            assert self.state is not None and self.lanes is not None
            out["detectors"][det] = {
                "score": float(self.state.value[j]), "threshold": float(self.lanes.thresholds[j]),
                "open": bool(self.state.open[det]),
            }
        return out

    def evidence(self) -> dict[str, float]:
        """Per detector, its lanes' highest evidence over threshold (1 is where it fires); empty without lanes."""
        if self.lanes is None or self.state is None:
            return {}
        return {det: float(self.state.value[j] / self.lanes.thresholds[j]) for det, j in self._strongest().items()}

    def _strongest(self) -> dict[str, int]:
        """Per detector, its lane nearest (or furthest past) its threshold; empty without lanes."""
        if self.lanes is None or self.state is None:
            return {}
        ratio = self.state.value / self.lanes.thresholds
        names = np.asarray(self.lanes.detectors)
        out = {}
        for det in self.lanes.detector_names():
            idx = np.flatnonzero(names == det)
            out[det] = int(idx[np.argmax(ratio[idx])])
        return out

    def to_dict(self, blobs: dict[str, bytes] | None = None) -> dict:
        """The column's state; the codebook and lanes, fixed since calibration, are encoded once and kept.

        With ``blobs``, the fixed part is put there under its digest and the
        state names it by that digest (a store then writes it once).
        """
        fixed = self._fixed
        if fixed is None:
            fixed = self._fixed = msgspec.msgpack.encode(
                {"book": self.book.to_dict(), "lanes": self.lanes.to_dict() if self.lanes else None})
            self._digest = hashlib.blake2b(fixed, digest_size=16).hexdigest()
        if blobs is not None:
            blobs[self._digest] = fixed
        return {
            "name": self.name, "fixed": self._digest if blobs is not None else fixed,
            "state": self.state.to_dict() if self.state else None,
            "stats": self.stats.to_dict(),
            "tail": self.tail.astype("<f8").tobytes(), "unseen_tail": self.unseen_tail, "unseen_at": self.unseen_at,
            "code_tail2": self.code_tail.astype("<i2").tobytes(),  # codes are under 600: two bytes each
            "hash_tail": self.hash_tail.astype("<u4").tobytes(),
            "ref_run": self.ref_run,
        }

    @classmethod
    def from_dict(cls, raw: dict, block: int, resolve_fraction: float,
                  blobs: Mapping[str, bytes] | None = None) -> ColumnMonitor:
        data, digest = raw["fixed"], None
        if isinstance(data, str):  # a digest: the fixed part is kept apart
            if blobs is None or data not in blobs:
                raise StateError(f"column {raw['name']!r}: its codebook and lanes ({data}) are not in the state")
            digest = data
            data = blobs[digest]
        fixed = msgspec.msgpack.decode(data)
        lanes = LaneTable.from_dict(fixed["lanes"]) if fixed["lanes"] else None
        state = LaneState.from_dict(raw["state"]) if raw["state"] else None
        col = cls(raw["name"], codebook_from_dict(fixed["book"]), lanes, state, stats_from_dict(raw["stats"]),
                  block, resolve_fraction)
        col._fixed = data
        col._digest = digest or hashlib.blake2b(data, digest_size=16).hexdigest()
        col.tail = np.frombuffer(raw["tail"], dtype="<f8").astype(np.float64)
        col.unseen_tail = list(raw["unseen_tail"])
        col.unseen_at = [int(at) for at in raw.get("unseen_at", [-1] * len(col.unseen_tail))]  # (before: unknown)
        col.code_tail = (np.frombuffer(raw["code_tail2"], dtype="<i2") if "code_tail2" in raw  # (0.2: none)
                         else np.frombuffer(raw.get("code_tail", b""), dtype="<i4")).astype(np.int64)
        col.hash_tail = np.frombuffer(raw.get("hash_tail", b""), dtype="<u4").astype(np.uint32)
        col.ref_run = int(raw.get("ref_run", 0))
        return col


def _runs_from(segment: SegmentMonitor) -> None:
    """A segment's lanes count their runs in its own events, as it watches them (not the model's)."""
    for col in segment.columns.values():
        if col.state is not None:
            col.state.run_start[:] = segment.events


def _rows_by_code(codes: np.ndarray, missing: bool = False) -> list[tuple[int, np.ndarray]]:
    """(code, its rows in order) of each code present, ascending (and -1, missing, first when ``missing``).

    >>> [(c, r.tolist()) for c, r in _rows_by_code(np.array([2, 0, 2, -1, 0]))]
    [(0, [1, 4]), (2, [0, 2])]
    """
    order = np.argsort(codes, kind="stable")
    ordered = codes[order]
    starts = np.flatnonzero(np.concatenate([[True], ordered[1:] != ordered[:-1]])) if codes.size else order
    bounds = [*starts.tolist(), codes.size]
    return [(int(ordered[a]), order[a:b]) for a, b in zip(bounds, bounds[1:]) if missing or ordered[a] >= 0]


def _longest_run(values: np.ndarray, rare: np.ndarray | None = None) -> int:
    """The longest run of one value among the present ``values`` (runs of a value ``rare`` marks, if given).

    >>> _longest_run(np.array([1.0, 2.0, 2.0, np.nan, 2.0, 3.0]))
    3
    >>> _longest_run(np.array([0.0, 0.0, 0.0, 5.0, 5.0]), rare=np.array([False, False, False, True, True]))
    2
    """
    keep = ~np.isnan(values)
    present = values[keep]
    if not present.size:
        return 0
    ends = np.flatnonzero(np.diff(present) != 0)
    starts = np.concatenate([[0], ends + 1])
    lengths = np.diff(np.concatenate([starts, [present.size]]))
    if rare is not None:
        lengths = lengths[rare[keep][starts]]
    return int(lengths.max()) if lengths.size else 0


def _change_point(llr: np.ndarray) -> int:
    """The most likely change point in a detector's run, from its lane's increments: the index after which
    their running sum rose from its least.

    >>> _change_point(np.array([0.5, -1.0, -0.2, 2.0, 2.0]))
    3
    """
    return int(np.argmin(np.concatenate([[0.0], np.cumsum(llr)])))


def _in_units(context: dict, book: Codebook) -> str | None:
    """``median 20.1 -> 2,010 (about x100)`` in the column's own units, when both medians are known.

    >>> _in_units({"median": 2010.0}, NumericCodebook(np.array([1.0, 50.0]), 20.1))
    'median 20.1 -> 2,010 (about x100)'
    """
    now, before = context.get("median"), getattr(book, "median", float("nan"))
    if now is None or before != before:
        return None
    text = f"median {_num(before)} -> {_num(now)}"
    ratio = _factor(context, book)
    if ratio is not None and (ratio >= 2 or ratio <= 0.5):
        text += f" (about x{_num(ratio)})" if ratio >= 2 else f" (about /{_num(1 / ratio)})"
    return text


def _median_moved(context: dict, book: Codebook) -> bool:
    """Whether the median (read from the reference's bins over ``values`` values) moved by more than a quarter
    of the reference's interquartile range and by more than twice its own standard error (about 1.25 SD over
    the root of the values; the SD read from the interquartile range now, else the reference's).

    >>> book = NumericCodebook(np.array([1.0, 50.0]), 20.0, (10.0, 30.0))
    >>> _median_moved({"median": 26.0, "values": 400}, book), _median_moved({"median": 26.0, "values": 20}, book)
    (True, False)
    >>> _median_moved({"median": 22.0, "values": 400}, book), _median_moved({"median": 26.0}, book)
    (False, False)
    """
    now, before, values = context.get("median"), getattr(book, "median", float("nan")), context.get("values", 0)
    quartiles = getattr(book, "quartiles", (float("nan"),) * 2)
    if now is None or values < 1:
        return False
    spread = context.get("iqr", quartiles[1] - quartiles[0]) / 1.349
    return bool(abs(now - before) > max(0.25 * (quartiles[1] - quartiles[0]), 2.0 * 1.25 * spread / math.sqrt(values)))


def _beyond_ratio(context: dict, book: Codebook) -> float | None:
    """The latest values beyond the reference's range over its median, both positive, for a column of
    positive amounts (its least reference value not below 0: a ratio to a median near 0 says nothing)."""
    now, before, edges = context.get("beyond"), getattr(book, "median", float("nan")), getattr(book, "edges", None)
    if now is None or not now > 0 or not before > 0 or edges is None or not len(edges) or not edges[0] >= 0:
        return None
    return float(now / before)


def _beyond_factor(context: dict, book: Codebook) -> float | None:
    """:func:`_beyond_ratio` of a column of positive amounts when it is near a power of ten (x10, x100,
    /1000: a unit slip on part of the traffic, not a count that runs past its usual range) and the values are
    well clear of the reference's range (three times past it: not a spike just past its largest) or most of
    the run's values (``bulk``: a slip on all the traffic, found after a few values); else None.

    >>> book = NumericCodebook(np.array([1.0, 50.0]), 20.0)
    >>> _beyond_factor({"beyond": 1900.0}, book), _beyond_factor({"beyond": 340.0}, book)
    (95.0, None)
    >>> _beyond_factor({"beyond": 200.0}, NumericCodebook(np.array([1.0, 150.0]), 2.0)) is None  # past 150, not far
    True
    >>> _beyond_factor({"beyond": 200.0, "bulk": 0.8}, NumericCodebook(np.array([1.0, 150.0]), 2.0))  # most moved
    100.0
    """
    ratio, edges = _beyond_ratio(context, book), getattr(book, "edges", None)
    if ratio is None or edges is None:
        return None
    beyond = context["beyond"]
    clear = beyond >= 3 * edges[-1] or beyond * 3 <= edges[0]  # well clear of the range: not a spike past it,
    if not (clear or context.get("bulk", 0.0) >= 0.5):  # or most of the run's values there: the column moved
        return None
    decades = math.log10(ratio)
    return ratio if abs(decades) >= 0.9 and abs(decades - round(decades)) <= 0.15 else None


def _ratio_words(ratio: float) -> str:
    return f"about x{_num(ratio)}" if ratio >= 1 else f"about /{_num(1 / ratio)}"


def _spread_in_units(context: dict, book: Codebook) -> tuple[float, float] | None:
    """(reference, recent) interquartile range in the column's units, when both are known.

    >>> _spread_in_units({"iqr": 8.0}, NumericCodebook(np.array([1.0, 50.0]), 20.1, (18.0, 22.0)))
    (4.0, 8.0)
    """
    quartiles = getattr(book, "quartiles", None)
    if "iqr" not in context or quartiles is None or not quartiles[1] - quartiles[0] > 0:
        return None
    return (float(quartiles[1] - quartiles[0]), float(context["iqr"]))


def _factor(context: dict, book: Codebook) -> float | None:
    """The median of the values at a firing over the reference median, when both are known and positive and
    the column is one of positive amounts (its reference's lowest cut not below 0): a ratio of medians near
    0 of a centred column (a z-score) says nothing of units.

    >>> _factor({"median": 2010.0}, NumericCodebook(np.array([1.0, 50.0]), 20.1))
    100.0
    >>> _factor({"median": 1.49}, NumericCodebook(np.array([-2.3, 0.0, 2.3]), 0.00725)) is None
    True
    """
    now, before = context.get("median"), getattr(book, "median", float("nan"))
    edges = getattr(book, "edges", None)
    if now is None or not before > 0 or not now > 0 or edges is None or not (len(edges) and edges[0] >= 0):
        return None
    return float(now / before)


def _num(x: float) -> str:
    """A number as a person reads it: 3 significant digits, thousands separated."""
    if x == 0 or not math.isfinite(x):
        return f"{x:g}"
    digits = max(0, 2 - int(math.floor(math.log10(abs(x)))))
    return f"{round(x, digits):,.{digits}f}"


TAIL = 64  # present values a numeric column carries between batches, for the median in its messages
STUCK_LEAST = 12  # a column's last values all one value, twice as many as its baseline's longest run of one
STUCK_BIN = 0.1  # value, in a bin that held less than this of it: "stuck at" it (a model returning a constant)
CODE_TAIL = 512  # codes a column carries between batches, for a share measured since a change point
SHARE_LEAST = 3  # ... of at least this many events (a sudden whole change is found after two or three)
NEW_COLUMN = "new_column"  # the detector name of a column first seen after the baseline
SEGMENT_MIN_EVENTS = 1000  # baseline events a segment value needs for detectors of its own
VERSION = "model_version"  # the events' model_version: a segment when the baseline holds two or more
LATE_VERSION_EVENTS = 2_000  # a version new to the baseline takes its own from its first this many events
NEW_VERSIONS_KEPT = 16  # versions the baseline did not hold whose first event a model remembers (the latest)
NEW_VERSIONS_MOST = 64  # past this many new versions (or a baseline of more), versions are not named at all
NEW_VERSION_REACH = 500  # a drift found within this many events of a new version's first (or within its run) says so
VERSION_IDLE_EVENTS = 50_000  # ... and starts over when unseen for this many events of its model
# the tilts of an id column's repeat share: rare in a baseline, so strong tilts find a few percent fast
REPEAT_THETAS: dict[str, tuple[float, ...]] = {"mix": (-1.0, 0.4, 1.0, 2.0, 4.0, 7.0)}
# the events' own ids are watched as an id column is: ``event_id.repeat`` (a producer re-sending its events)
EVENT_REPEAT = "event_id.repeat"
EVENT_IDS = "(event_id)"  # its key among recent_ids (not a column name: ids of a feature named event_id are apart)
# the tilts of a number's precision (three codes: one rising is another falling): up only, strong ones for a
# precision the baseline (nearly) never had
DECIMALS_THETAS: dict[str, tuple[float, ...]] = {"mix": (0.4, 1.0, 2.0, 4.0, 7.0)}


@dataclass
class SegmentMonitor:
    """The column detectors of one segment (a tag's value), on that segment's events alone."""

    columns: dict[str, ColumnMonitor]
    events: int = 0


class ModelMonitor:
    """Everything inferwatch knows about one model."""

    def __init__(self, model: str, config: ModelConfig) -> None:
        self.model = model
        self.config = config
        self.events = 0
        self.live_from: int | None = None
        self.columns: dict[str, ColumnMonitor] = {}
        self.warmup: list[Batch] = []
        self.policy = AlertPolicy(model, config.alert_policy)
        self.block = config.block_size  # a model keeps the block size it was built with (saved with its state)
        self.rule_rates = self._rule_rates()
        self.segments: dict[str, dict[str, dict[str, NumericStats | CategoricalStats]]] = {}
        self.roles: dict[str, str] = {}  # column -> identifier | text | numeric | categorical (see roles.py)
        self.type_changes = TypeChanges()
        self.segment_monitors: dict[tuple[str, str], SegmentMonitor] = {}  # (tag, value) -> its detectors
        self.baseline_versions: set[str] | None = None  # versions the baseline held 1,000 times (None: not known)
        self.late_versions: dict[str, list[Batch]] = {}  # any other version: its events until it has a baseline
        self.version_seen: dict[str, int] = {}  # ... and the model event each was last seen at
        # the versions the baseline held (None: not told, or too many to be releases) and each later one's first
        # model event (the latest NEW_VERSIONS_KEPT; how many came): a drift a new version's arrival explains says so
        self.known_versions: set[str] | None = None
        self.new_versions: dict[str, int] = {}
        self.new_version_count = 0
        self.baseline_columns: list[str] = []  # the columns of the baseline (a late version's are these)
        self.late: dict[str, list[Column]] = {}  # a column first seen after the baseline: its values so far
        self.late_times: dict[str, list[np.ndarray]] = {}  # and their events' times
        self.log_arl0 = 0.0  # the lanes' budget, for the baselines of late columns
        self.recent_ids: dict[str, np.ndarray] = {}  # identifier column -> hashes of its last ids (see repeats)
        self.time_scales: dict[str, float] = {}  # timestamp column -> its unit per second (see roles.ages)
        # numeric_text columns whose .value reads thousands grouped by commas (roles taken since it does)
        self.grouped_numbers: set[str] = set()

    @property
    def calibrated(self) -> bool:
        return self.live_from is not None

    @property
    def waiting(self) -> set[str]:
        """Columns seen but still taking their baseline: late columns, and the events' ids after a reference."""
        return {EVENT_REPEAT if name == EVENT_IDS else name for name in self.late}

    def fit(self, reference: Batch, invalid: Mapping[str, set[str]] | None = None) -> None:
        """Take the baseline from reference events (the first ``max_reference_events``); ``invalid``: column ->
        the kinds of wrong value the decoder found in it there (they are how the column is, not news)."""
        if len(reference) > self.config.max_reference_events:
            reference = reference.take(np.arange(self.config.max_reference_events))
        self._calibrate(reference, count_stats=False)
        self.type_changes.baseline(dict(invalid or {}))

    def process(self, batch: Batch, rule_hits: np.ndarray | None = None,
                invalid: Mapping[str, tuple[np.ndarray, str | Sequence[str]]] | None = None) -> list[Alert]:
        """Alerts of one batch; ``rule_hits`` (rules x events) feeds the guardrail alerts; ``invalid``
        (column -> rows, what was wrong) the fields the decoder set to missing for their type."""
        if len(batch) == 0:
            return []
        findings: list[Finding] = []
        if rule_hits is not None and self.rule_rates.watched:
            findings += self.rule_rates.observe(rule_hits, self.events)
        findings += self.type_changes.observe(invalid or {}, len(batch), self.events)
        live: Batch | None = batch
        offset = 0
        if not self.calibrated:
            have = sum(len(b) for b in self.warmup)
            take = min(len(batch), self.config.warmup_events - have)
            self.warmup.append(batch.slice(0, take))
            self.events += take
            if have + take >= self.config.warmup_events:
                reference = concat_batches(self.warmup)
                self.warmup = []
                self._calibrate(reference, count_stats=True)
            live = batch.slice(take, len(batch)) if take < len(batch) else None
            offset = take
        if live is not None:
            start = self.events
            self._note_new_versions(live, start)
            found = self._live_findings(live)
            findings += [replace(f, row=f.row + offset) for f in self._versions_said(found, start)]
        return self.policy.apply(findings, batch.times, batch.event_ids)

    def _note_new_versions(self, live: Batch, start: int) -> None:
        """Note the first event of each ``model_version`` the baseline did not hold (the latest
        ``NEW_VERSIONS_KEPT``)."""
        arr = live.segments.get(VERSION)
        if arr is not None and self.known_versions is not None:
            codes, first = np.unique(arr.codes, return_index=True)
            new = [(arr.categories[c], int(i)) for c, i in zip(codes.tolist(), first.tolist())
                   if c >= 0 and arr.categories[c] not in self.known_versions
                   and arr.categories[c] not in self.new_versions]
            self.new_version_count += len(new)
            if self.new_version_count > NEW_VERSIONS_MOST:  # (an id sent as the version: nothing to say)
                self.known_versions, self.new_versions = None, {}
                return
            self.new_versions.update((value, start + i) for value, i in new)
            self.new_versions = dict(sorted(self.new_versions.items(), key=lambda kv: kv[1])[-NEW_VERSIONS_KEPT:])

    def _versions_said(self, found: list[Finding], start: int) -> list[Finding]:
        """A whole-model drift that fired within its run (at least ``NEW_VERSION_REACH`` events) of a new
        ``model_version``'s first event says so: a model released, retrained or rolled back is the likeliest
        cause of a prediction that moved."""
        if not self.new_versions:
            return found
        out = []
        for f in found:
            at = start + f.row
            drift = f.action == "fire" and f.segment is None and (f.kind or DETECTOR_KIND.get(f.detector)) == "drift"
            came = [(first, v) for v, first in self.new_versions.items()
                    if drift and at - max(f.run, NEW_VERSION_REACH) < first <= at]
            if came:
                first, value = max(came)
                f = replace(f, message=f"{f.message[:-1]}; model_version {value!r} first seen {at - first:,} "
                                       f"events before.")
            out.append(f)
        return out

    def _yield_event_repeat(self) -> None:
        """A column of the events named ``event_id.repeat`` arrived: it keeps its name, and the events' own ids
        are no longer watched (as when a feature is named ``event_id``); it is then a new column."""
        del self.recent_ids[EVENT_IDS]
        self.late.pop(EVENT_IDS, None)
        self.late_times.pop(EVENT_IDS, None)
        for columns in (self.columns, *(seg.columns for seg in self.segment_monitors.values())):
            columns.pop(EVENT_REPEAT, None)  # the flags' monitor (the column's own comes as a new column)

    def _take_role(self, name: str, column: Column, times: np.ndarray) -> str:
        """The column's role (the config's, else inferred), noted with a timestamp's unit; a ``timestamp``
        the config gives to values that are not times keeps the column's kind."""
        cc = self.config.columns.get(name)
        role = (cc.role if cc is not None and cc.role else None) or infer_role(name, column, times)
        if cc is not None and cc.type == "categorical" and not cc.role and role in ("numeric_text", "code"):
            role = "categorical"  # the config said these are labels (codes sent as numbers), not quantities
        if role == "timestamp":
            scale = time_scale(column, times)
            if scale is None:
                role = "numeric" if isinstance(column, NumericArray) else "categorical"
            else:
                self.time_scales[name] = scale
        if role == "numeric_text":
            self.grouped_numbers.add(name)
        if role == "code" and not isinstance(column, NumericArray):
            role = "categorical"  # (labels already)
        self.roles[name] = role
        return role

    def _derived(self, name: str, column: Column, times: np.ndarray) -> tuple[str, Column] | None:
        """What a text, number-as-text or time column is watched by beside its missing rate, and a number
        beside its values (see roles.py): (``<name>.length`` | ``.value`` | ``.age`` | ``.decimals``, its
        values), or None."""
        role = self.roles.get(name)
        if role == "numeric" and isinstance(column, NumericArray):
            cc = self.config.columns.get(f"{name}.decimals")
            return (f"{name}.decimals", decimals(column)) if cc is None or cc.enabled else None
        if role == "text" and isinstance(column, CategoricalArray):
            return f"{name}.length", text_lengths(column)
        if role == "numeric_text" and isinstance(column, CategoricalArray):
            return f"{name}.value", text_numbers(column, grouped=name in self.grouped_numbers)
        if role == "timestamp" and name in self.time_scales:
            return f"{name}.age", ages(column, times, self.time_scales[name])
        if role == "code" and isinstance(column, NumericArray):
            return f"{name}.code", code_labels(column)
        return None

    def _with_derived(self, columns: Mapping[str, Column], times: np.ndarray,
                      event_ids: TextArray | None = None) -> Mapping[str, Column]:
        """The batch's columns plus what text, time and id columns are watched by: ``<name>.length``,
        ``<name>.value``, ``<name>.age``, ``<name>.decimals`` and ``<name>.repeat`` (carrying each id column's
        last ids on to the next batch), and with ``event_ids`` the events' own ``event_id.repeat``."""
        ids = [name for name in self.recent_ids if name in columns]
        derived = [d for name, col in columns.items()
                   if (d := self._derived(name, col, times)) is not None and d[0] not in columns]
        events = event_ids is not None and EVENT_IDS in self.recent_ids  # (see _yield_event_repeat)
        if not derived and not ids and not events:
            return columns
        out = {**columns, **dict(derived)}
        for name in ids:
            out[f"{name}.repeat"], self.recent_ids[name] = repeats(columns[name], self.recent_ids[name])
        if events:
            assert event_ids is not None
            out[EVENT_REPEAT], self.recent_ids[EVENT_IDS] = _event_repeats(event_ids, self.recent_ids[EVENT_IDS])
        return out

    def _fixed_labels(self, name: str) -> tuple[tuple[str, ...], dict[str, tuple[float, ...]]] | None:
        """(labels, tilts) of a derived column whose labels are known in advance: an id column's or the
        events' ``.repeat``, a number's ``.decimals``; None for any other (a column of the events included)."""
        if name in self.roles:
            return None
        base, _, suffix = name.rpartition(".")
        if name == EVENT_REPEAT or (suffix == "repeat" and self.roles.get(base) == "identifier"):
            return REPEAT_LABELS, REPEAT_THETAS
        return (DECIMALS_LABELS, DECIMALS_THETAS) if self._decimals_of(name) is not None else None

    def _decimals_of(self, name: str) -> str | None:
        """The numeric column whose ``<name>.decimals`` this derived column is, or None."""
        base, _, suffix = name.rpartition(".")
        return base if suffix == "decimals" and self.roles.get(base) == "numeric" else None

    def _as_reported(self, findings: list[Finding]) -> list[Finding]:
        """Findings of derived columns as they are reported: a number's decimals are a detector of that
        number (``decimals``, joining its drift episode); they and an id's repeats are ``data_quality``."""
        out = []
        for f in findings:
            if f.column in self.roles or f.detector not in DETECTOR_KIND:  # a column of the events, its own finding
                out.append(f)
                continue
            base = self._decimals_of(f.column)
            if base is not None:
                said = (f.message.replace(f"{f.column}: ", f"{base}: decimals changed: ", 1) if f.action == "fire"
                        else f.message.replace(f"{f.column}: {f.detector}", f"{base}: decimals", 1))
                f = replace(f, column=base, detector="decimals", kind="data_quality", message=said)
            elif f.column.endswith(".repeat"):
                envelope = f.column == EVENT_REPEAT and "event_id" not in self.roles  # not a feature named so
                what = "events whose event_id repeats" if envelope else "ids that repeat"
                said = f.message.replace("share of 'repeat'", f"share of {what} one of the last {REPEAT_WINDOW:,}", 1)
                f = replace(f, kind="data_quality", message=said)
            out.append(f)
        return out

    def _live_findings(self, batch: Batch) -> list[Finding]:
        if EVENT_REPEAT in batch.columns and EVENT_IDS in self.recent_ids:
            self._yield_event_repeat()
        n, start = len(batch), self.events
        findings: list[Finding] = []
        columns = self._with_derived(batch.columns, batch.times, batch.event_ids)
        for name, col in self.columns.items():
            findings += col.watch(columns.get(name), n, start)
        findings += self._segment_findings(batch, columns)
        findings += self._late_versions(batch, columns)
        watched = set(self.columns)
        findings += self._late_columns(batch, columns)
        if set(self.columns) != watched:  # a late column got its baseline: what it is watched by, from here on
            late = {name: batch.columns[name] for name in set(self.columns) - watched if name in batch.columns}
            columns = {**columns, **self._with_derived(late, batch.times)}
        self._segment_stats(batch, columns, start)
        self.events += n
        return self._as_reported(findings)

    def _late_columns(self, batch: Batch, with_derived: Mapping[str, Column]) -> list[Finding]:
        """A column first seen after the baseline: said once, then watched against a baseline of its own
        (its first ``warmup_events`` events from its first value on). The events' own ``event_id.repeat``
        after a reference file (see :meth:`_calibrate`) is baselined so too, without a word."""
        cfg, findings, n = self.config, [], len(batch)
        late = dict(batch.columns)
        envelope = EVENT_REPEAT in with_derived and EVENT_REPEAT not in batch.columns  # the events' own ids
        if envelope and EVENT_REPEAT not in self.columns:
            late[EVENT_REPEAT] = with_derived[EVENT_REPEAT]
        for name, whole in sorted(late.items()):
            quiet = envelope and name == EVENT_REPEAT
            key = EVENT_IDS if quiet else name  # where its values wait (a feature may carry the same name)
            column = whole
            if name in self.columns or name in self.roles:
                continue
            cc = cfg.columns.get(name)
            if (cc is None and not cfg.monitor_unlisted) or (cc is not None and not cc.enabled):
                continue
            present = np.flatnonzero(~np.isnan(column.values) if isinstance(column, NumericArray)
                                     else column.codes >= 0)
            held = self.late.get(key)
            if held is None:
                if not present.size:
                    continue
                first = int(present[0])
                kind = _kind(column)
                if not quiet:
                    findings.append(Finding(name, NEW_COLUMN, "fire", first, 1.0, 0.0, "warning",
                                            f"{name}: a new {kind} column, not in the baseline; it is watched "
                                            f"against its own first {cfg.warmup_events:,} events",
                                            kind="data_quality"))
                column = column.take(np.arange(first, len(column)))
                held = self.late[key] = []
                self.late_times[key] = []
                offset = first
            else:
                offset = 0
            held.append(column)
            self.late_times.setdefault(key, []).append(np.asarray(batch.times[offset:], dtype=np.float64))
            have = sum(len(c) for c in held)
            if have >= cfg.warmup_events:
                take = cfg.warmup_events
                baseline = concat_columns(held).take(np.arange(take))
                when = np.concatenate(self.late_times[key])[:take]
                del self.late[key], self.late_times[key]
                kind = _kind(baseline)
                if quiet and not _ids_tell(cast(CategoricalArray, baseline)):
                    del self.recent_ids[EVENT_IDS]
                    continue
                if not quiet:
                    self._take_role(name, baseline, when)
                chosen, columns = {name: kind}, {name: baseline}
                derived = self._derived(name, baseline, when)  # as a column of the baseline would be
                if derived is not None:
                    columns[derived[0]], chosen[derived[0]] = derived[1], _kind(derived[1])
                built = self._build(columns, chosen)
                self.columns.update(self._monitors(built, chosen, columns, self.log_arl0, True))
                row = offset + len(column) - (have - take) - 1
                if not quiet:
                    findings.append(Finding(name, NEW_COLUMN, "clear", max(row, 0), 0.0, 0.0, "info",
                                            f"{name}: baseline taken from its first {take:,} events; watched from "
                                            "here", kind="data_quality"))
                if row + 1 < n:  # the rest of this batch is watched at once: batch cuts change nothing
                    rest = np.arange(row + 1, n)
                    values = self._with_derived({name: whole.take(rest)}, np.asarray(batch.times)[rest])
                    for watched in chosen:
                        findings += self.columns[watched].watch(values[watched], len(rest), self.events + row + 1,
                                                                rest)
        return findings

    def _segment_findings(self, batch: Batch, columns: Mapping[str, Column]) -> list[Finding]:
        """The detectors of each segment with a baseline of its own, on that segment's events."""
        findings: list[Finding] = []
        for (tag, value), seg in self.segment_monitors.items():
            arr = batch.segments.get(tag)
            if arr is None or value not in arr.categories:
                continue
            rows = np.flatnonzero(arr.codes == arr.categories.index(value))
            if not rows.size:
                continue
            for name, col in seg.columns.items():
                values = columns.get(name)
                part = values.take(rows) if values is not None else None
                findings += col.watch(part, len(rows), seg.events, rows, (tag, value))
            seg.events += len(rows)
        return findings

    def _late_versions(self, batch: Batch, columns: Mapping[str, Column]) -> list[Finding]:
        """A version the baseline held too few times for detectors of its own, or not at all (a new canary, a
        rollout), when the baseline held versions: its first ``LATE_VERSION_EVENTS`` events are its baseline,
        taken quietly, then it has detectors of its own on the columns of the model's baseline; the rest of
        the batch is watched at once. A version that was the whole baseline's stays the model itself. A
        version unseen for ``VERSION_IDLE_EVENTS`` events starts its baseline over (its events are dropped),
        and at most ``max_segment_values`` versions have detectors. Decided in event order: batch cuts change
        nothing."""
        arr = batch.segments.get(VERSION)
        if arr is None or not self.baseline_versions or VERSION not in self._segment_tags():
            return []
        plans = []
        full = self._versions_full()
        for code, rows in _rows_by_code(arr.codes):
            value = arr.categories[code]
            if value in self.baseline_versions or (VERSION, value) in self.segment_monitors:
                continue
            if full and value not in self.late_versions:  # (no room for its detectors: no baseline taken)
                continue
            held = self.late_versions.get(value, [])
            last = self.version_seen.get(value, -VERSION_IDLE_EVENTS - 1)
            at = self.events + rows
            gaps = np.flatnonzero(np.diff(np.concatenate([[last], at])) > VERSION_IDLE_EVENTS)
            have, first = sum(len(b) for b in held), 0
            for gap in gaps.tolist():  # each long gap starts the baseline over, unless it was complete before
                if have + gap - first >= LATE_VERSION_EVENTS:
                    break
                held, have, first = [], 0, gap
            need = LATE_VERSION_EVENTS - have
            plans.append((int(rows[first + need - 1]) if len(rows) - first >= need else len(batch), value, held,
                          rows[first:first + need], rows[first + need:], value not in self.late_versions, int(at[-1])))
        findings: list[Finding] = []
        full_from = len(batch)  # the row where the last room for a version's detectors was taken
        for done_at, value, held, taken, rest, new, last_at in sorted(plans, key=lambda p: (p[0], p[1])):
            if new and taken[0] > full_from:  # (in event order: no room for its detectors, no baseline taken)
                continue
            self.version_seen[value] = last_at
            part = batch.take(taken)
            names = self.baseline_columns
            held = [*held, Batch(self.model, part.event_ids, part.times,
                                 {name: columns[name].take(taken) for name in names if name in columns})]
            self.late_versions[value] = held
            if done_at >= len(batch):
                continue
            del self.late_versions[value], self.version_seen[value]
            if self._versions_full():
                continue
            baseline = concat_batches(held)
            chosen = {name: _kind(column) for name, column in baseline.columns.items()}
            built = self._build(baseline.columns, chosen)
            key = (VERSION, value)
            seg = self.segment_monitors[key] = SegmentMonitor(
                self._monitors(built, chosen, baseline.columns, self.log_arl0, True), len(baseline))
            _runs_from(seg)
            if self._versions_full():
                full_from = min(full_from, done_at)
            for name, col in seg.columns.items() if rest.size else ():
                values = columns.get(name)
                findings += col.watch(values.take(rest) if values is not None else None, len(rest), seg.events, rest,
                                      key)
            seg.events += len(rest)
        idle = [v for v, seen in self.version_seen.items() if self.events + len(batch) - seen > VERSION_IDLE_EVENTS]
        for value in idle:  # (they would start over when seen again: their events need not wait)
            self.late_versions.pop(value, None)
            del self.version_seen[value]
        return findings

    def _versions_full(self) -> bool:
        """Whether ``max_segment_values`` versions have detectors of their own (no room for another)."""
        return sum(tag == VERSION for tag, _ in self.segment_monitors) >= self.config.max_segment_values

    def _segment_tags(self) -> list[str]:
        """The tags segmented by: the config's ``segments``, and ``model_version`` (``version_segments``)."""
        implicit = [VERSION] if self.config.version_segments and VERSION not in self.config.segments else []
        return [*self.config.segments, *implicit]

    def _segment_stats(self, batch: Batch, columns: Mapping[str, Column], start: int) -> None:
        versions = {value for tag, value in self.segment_monitors if tag == VERSION}
        for tag in [t for t in self._segment_tags() if t in self.config.segments or versions]:
            seg = batch.segments.get(tag)
            if seg is None:
                continue
            per_value = self.segments.setdefault(tag, {})
            for code, rows in _rows_by_code(seg.codes, missing=True):
                label = seg.categories[code] if code >= 0 else "(missing)"
                if tag == VERSION and tag not in self.config.segments and label not in versions:
                    continue  # (the statistics of the versions with detectors: a version per event costs nothing)
                if label not in per_value and len(per_value) >= self.config.max_segment_values:
                    label = "(other)"
                stats = per_value.setdefault(label, {})
                for name, col in self.columns.items():
                    values = columns.get(name)
                    part = values.take(rows) if values is not None else _empty_like(col.kind, len(rows))
                    target = stats.setdefault(
                        name, NumericStats.empty() if col.kind == "numeric" else CategoricalStats.empty())
                    if isinstance(target, NumericStats):
                        assert isinstance(part, NumericArray)  # observe() checked the batch's column kinds
                        target.update(part, start)
                    else:
                        assert isinstance(part, CategoricalArray)
                        target.update(part)

    def _calibrate(self, reference: Batch, count_stats: bool) -> None:
        cfg = self.config
        chosen: dict[str, str] = {}
        for name, column in reference.columns.items():
            cc = cfg.columns.get(name)
            if (cc is None and not cfg.monitor_unlisted) or (cc is not None and not cc.enabled):
                continue
            kind = "numeric" if isinstance(column, NumericArray) else "categorical"
            if cc is not None and cc.type and (cc.type if cc.type != "boolean" else "categorical") != kind:
                raise ConfigError(f"models.{self.model}.columns.{name}.type is {cc.type} but the data is {kind}")
            present = ~np.isnan(column.values) if isinstance(column, NumericArray) else column.codes >= 0
            if present.any():
                chosen[name] = kind
        self.roles, self.time_scales, self.grouped_numbers = {}, {}, set()
        columns = dict(reference.columns)
        for name in sorted(chosen):
            self._take_role(name, columns[name], reference.times)
            derived = self._derived(name, columns[name], reference.times)
            if derived is not None and derived[0] not in columns:  # a column of the events keeps its name
                columns[derived[0]], chosen[derived[0]] = derived[1], _kind(derived[1])
        self.recent_ids = {}
        for name in sorted(chosen):
            if self.roles.get(name) == "identifier" and f"{name}.repeat" not in columns:
                columns[f"{name}.repeat"], recent = repeats(columns[name], np.empty(0, dtype=np.uint64))
                chosen[f"{name}.repeat"] = "categorical"
                # warm-up events are the stream's: their ids carry on; a reference file's do not
                self.recent_ids[name] = recent if count_stats else np.empty(0, dtype=np.uint64)
        own = cfg.columns.get(EVENT_REPEAT)
        # the events' own ids, against the stream's own first events: the warm-up, or with a reference file the
        # first live events (a late column's baseline): a file's ids say nothing of how the live producer
        # delivers, and a deduplicated file would make ordinary redeliveries news
        if ("event_id" not in reference.columns and EVENT_REPEAT not in columns
                and (own.enabled if own is not None else cfg.monitor_unlisted)):
            flags, recent = _event_repeats(reference.event_ids, np.empty(0, dtype=np.uint64))
            if not count_stats:
                self.recent_ids[EVENT_IDS] = np.empty(0, dtype=np.uint64)
            elif _ids_tell(flags):
                columns[EVENT_REPEAT], chosen[EVENT_REPEAT] = flags, "categorical"
                self.recent_ids[EVENT_IDS] = recent
        built = self._build(columns, chosen)
        by_segment = {}
        for key, rows in self._segment_rows(reference).items():
            part = {name: columns[name].take(rows) for name in chosen}
            by_segment[key] = (len(rows), part, self._build(part, chosen))
        # the budget is per column: a column's lanes, its segments' included, share it
        total_lanes = sum(len(b[2]) for b in built.values()) + sum(
            len(b[2]) for _, _, seg in by_segment.values() for b in seg.values())
        n_columns = max(len(built), 1)
        log_arl0 = math.log(cfg.false_alarm_budget.column_events_per_false_alarm * max(total_lanes, 1) / n_columns)
        self.log_arl0 = log_arl0
        self.columns = self._monitors(built, chosen, columns, log_arl0, count_stats)
        self.segment_monitors = {
            key: SegmentMonitor(self._monitors(seg, chosen, part, log_arl0, count_stats), n if count_stats else 0)
            for key, (n, part, seg) in sorted(by_segment.items())}
        for segment in self.segment_monitors.values():
            _runs_from(segment)
        versions = reference.segments.get(VERSION)
        counts = (np.bincount(versions.codes[versions.codes >= 0], minlength=len(versions.categories))
                  if versions is not None else np.zeros(0))
        self.baseline_versions = {versions.categories[c] for c in np.flatnonzero(counts >= SEGMENT_MIN_EVENTS)
                                  } if versions is not None else set()
        self.late_versions, self.version_seen = {}, {}
        held = {versions.categories[c] for c in np.flatnonzero(counts)} if versions is not None else set()
        self.known_versions = held if len(held) <= NEW_VERSIONS_MOST else None
        self.new_versions, self.new_version_count = {}, 0
        self.baseline_columns = sorted(self.columns)
        self.live_from = self.events

    def _build(self, columns: Mapping[str, Column], chosen: dict[str, str]) -> dict:
        """name -> (codebook, reference codes, lane names, lane rows, p0, the codes as if live) of every chosen
        column (see :func:`~inferwatch.detectors.lanes.as_if_live`)."""
        cfg = self.config
        built = {}
        for name, kind in sorted(chosen.items()):
            column = columns[name]
            role = self.roles.get(name)
            book: Codebook
            detectors = cfg.detectors_for(name, kind)
            thetas: dict[str, tuple[float, ...]] | None = None
            fixed = self._fixed_labels(name)
            if fixed is not None:  # an id's repeats, a number's decimals: labels known in advance
                labels, thetas = fixed
                book = CategoricalCodebook(labels, frozenset(labels), False)
                user = cfg.columns.get(name)  # (its detectors are categorical: the config checked them)
                detectors = tuple(user.detectors) if user is not None and user.detectors else ("mix",)
            elif role in ("identifier", "text", "timestamp", "numeric_text"):  # only its absence is news
                book = (NumericCodebook(np.empty(0)) if isinstance(column, NumericArray)
                        else CategoricalCodebook((), frozenset(), True))
                user = cfg.columns.get(name)
                detectors = tuple(user.detectors) if user is not None and user.detectors else ("missing",)
            elif isinstance(column, NumericArray):  # i.e. kind == "numeric"
                book = NumericCodebook.from_reference(column.values, cfg.bins)
            else:
                book = CategoricalCodebook.from_reference(column, cfg.max_categories)
            base, _, suffix = name.rpartition(".")
            derived = name not in self.roles and _DERIVED_BY.get(self.roles.get(base, "")) == suffix
            if derived:  # a text's length, a number's code...: the column's own missing lane says it
                detectors = tuple(d for d in detectors if d != "missing")
            codes = book.encode(column)
            live = as_if_live(book, column, codes)
            built[name] = (book, codes, *build_lanes(book, codes, detectors, thetas, live), live)
        return built

    def _monitors(self, built: dict, chosen: dict[str, str], columns: Mapping[str, Column], log_arl0: float,
                  count_stats: bool) -> dict[str, ColumnMonitor]:
        cfg = self.config
        out = {}
        for name, (book, codes, names, rows, p0, live) in built.items():
            column = columns[name]
            lanes = calibrate(names, rows, p0, codes, log_arl0, self.block, live)
            stats = NumericStats.empty() if chosen[name] == "numeric" else CategoricalStats.empty()
            col = ColumnMonitor(name, book, lanes, LaneState.fresh(lanes, self.events) if lanes else None, stats,
                                self.block, cfg.alert_policy.resolve_fraction)
            if isinstance(column, NumericArray):  # (runs of values in the rare bins: a stuck value's kind)
                col.ref_run = _longest_run(column.values, rare=np.asarray(p0)[codes] < STUCK_BIN)
            if count_stats:  # warm-up events are events of the stream too
                column = columns[name]
                if isinstance(col.stats, NumericStats):
                    assert isinstance(column, NumericArray)  # the stats were made for the column's kind
                    col.stats.update(column)
                else:
                    assert isinstance(column, CategoricalArray)
                    col.stats.update(column)
            out[name] = col
        return out

    def _segment_rows(self, reference: Batch) -> dict[tuple[str, str], np.ndarray]:
        """(tag, value) -> reference rows, for the values of each segment tag with a baseline of their own:
        at least ``SEGMENT_MIN_EVENTS`` rows, the most frequent first, at most ``max_segment_values`` a tag."""
        out = {}
        for tag in self._segment_tags():
            seg = reference.segments.get(tag)
            if seg is None:
                continue
            counts = np.bincount(seg.codes[seg.codes >= 0], minlength=len(seg.categories))
            order = [int(k) for k in np.argsort(-counts, kind="stable") if counts[k] >= SEGMENT_MIN_EVENTS]
            if tag not in self.config.segments and len(order) < 2:  # one version: it is the model itself
                continue
            for code in order[: self.config.max_segment_values]:
                out[(tag, seg.categories[code])] = np.flatnonzero(seg.codes == code)
        return out

    def evidence(self) -> list[tuple[str, str, str, float]]:
        """(column, detector, segment ``tag=value`` or "", evidence over threshold) of every detector."""
        out = [(name, det, "", ratio) for name, col in self.columns.items() for det, ratio in col.evidence().items()]
        for (tag, value), seg in sorted(self.segment_monitors.items()):
            out += [(name, det, f"{tag}={value}", ratio) for name, col in seg.columns.items()
                    for det, ratio in col.evidence().items()]
        return out

    def status(self) -> dict:
        return {
            "model": self.model, "events": self.events, "calibrated": self.calibrated,
            "live_from": self.live_from,
            "columns": {k: {**c.status(), "role": self.roles.get(k, c.kind)} for k, c in self.columns.items()},
            "open_alerts": [list(k) for k in self.policy.open_alerts()],
        }

    def _rule_rates(self) -> RuleRates:
        cfg = self.config
        return RuleRates(cfg.rules, cfg.false_alarm_budget.column_events_per_false_alarm, self.block,
                         cfg.alert_policy.resolve_fraction)

    def to_dict(self, blobs: dict[str, bytes] | None = None) -> dict:
        """The model's state (with ``blobs``: the columns' fixed parts go there, see :meth:`ColumnMonitor.to_dict`)."""
        if len(self.warmup) > 1:  # joined once, not at every save while the warm-up fills
            self.warmup = [concat_batches(self.warmup)]
        warm = self.warmup[0] if self.warmup else None
        return {
            "model": self.model, "events": self.events, "live_from": self.live_from, "block": self.block,
            "columns": [c.to_dict(blobs) for c in self.columns.values()],
            "policy": self.policy.to_dict(),
            "rule_rates": self.rule_rates.to_dict(),
            "roles": self.roles,
            "type_changes": self.type_changes.to_dict(),
            "log_arl0": self.log_arl0,
            "recent_ids": {name: ids.astype("<u4" if name == EVENT_IDS else "<u8").tobytes()
                           for name, ids in sorted(self.recent_ids.items())},
            "time_scales": dict(sorted(self.time_scales.items())),
            "grouped_numbers": sorted(self.grouped_numbers),
            "late": {name: _batch_to_dict(Batch(self.model, TextArray.from_list([""] * len(c)),
                                                np.concatenate(self.late_times.get(name) or [np.full(len(c), np.nan)]),
                                                {name: c}))
                     for name, c in ((k, concat_columns(v)) for k, v in sorted(self.late.items()))
                     if name != EVENT_IDS},
            # the events' own repeat flags while their baseline fills: a byte each (no times, no ids)
            "event_repeats_late": (cast(CategoricalArray, concat_columns(self.late[EVENT_IDS])).codes
                                   .astype(np.int8).tobytes() if EVENT_IDS in self.late else None),
            "segment_monitors": [{"tag": tag, "value": value, "events": seg.events,
                                  "columns": [c.to_dict(blobs) for c in seg.columns.values()]}
                                 for (tag, value), seg in sorted(self.segment_monitors.items())],
            "warmup": _batch_to_dict(warm) if warm is not None else None,
            "baseline_versions": sorted(self.baseline_versions) if self.baseline_versions is not None else None,
            "late_versions": {value: _batch_to_dict(concat_batches(held)) for value, held in
                              sorted(self.late_versions.items())},
            "version_seen": dict(sorted(self.version_seen.items())),
            "known_versions": sorted(self.known_versions) if self.known_versions is not None else None,
            "new_versions": dict(sorted(self.new_versions.items())), "new_version_count": self.new_version_count,
            "baseline_columns": self.baseline_columns,
            "segments": {tag: {v: {c: s.to_dict() for c, s in cols.items()} for v, cols in vals.items()}
                         for tag, vals in self.segments.items()},
        }

    @classmethod
    def from_dict(cls, raw: dict, config: ModelConfig, blobs: Mapping[str, bytes] | None = None) -> ModelMonitor:
        mon = cls(raw["model"], config)
        mon.events = int(raw["events"])
        mon.live_from = raw["live_from"]
        mon.block = int(raw.get("block", BLOCK_BEFORE_SAVED))
        mon.rule_rates = mon._rule_rates()
        block, fraction = mon.block, config.alert_policy.resolve_fraction
        off = {name for name, cc in config.columns.items() if not cc.enabled}  # (a state may predate the config's word)
        mon.columns = {c["name"]: ColumnMonitor.from_dict(c, block, fraction, blobs) for c in raw["columns"]
                       if c["name"] not in off}
        mon.policy = AlertPolicy.from_dict(mon.model, config.alert_policy, raw["policy"])
        mon.rule_rates.load(raw.get("rule_rates") or {})
        mon.warmup = [_batch_from_dict(raw["warmup"])] if raw["warmup"] else []
        mon.roles = dict(raw.get("roles") or {})
        mon.type_changes = TypeChanges.from_dict(raw.get("type_changes"))
        mon.log_arl0 = float(raw.get("log_arl0", 0.0))
        mon.recent_ids = {name: np.frombuffer(ids, dtype="<u4" if name == EVENT_IDS else "<u8").astype(np.uint64)
                          for name, ids in (raw.get("recent_ids") or {}).items()
                          if (EVENT_REPEAT if name == EVENT_IDS else f"{name}.repeat") not in off}
        mon.time_scales = {name: float(scale) for name, scale in (raw.get("time_scales") or {}).items()}
        mon.grouped_numbers = set(raw.get("grouped_numbers") or ())
        late = {name: _batch_from_dict(b) for name, b in (raw.get("late") or {}).items()}
        mon.late = {name: [b.columns[name]] for name, b in late.items()}
        # a state saved before late columns kept their times holds zeros in their place: not times
        mon.late_times = {name: [np.asarray(b.times, dtype=np.float64) if "time_scales" in raw
                                 else np.full(len(b.times), np.nan)] for name, b in late.items()}
        if raw.get("event_repeats_late") is not None:
            flags = np.frombuffer(raw["event_repeats_late"], dtype=np.int8).astype(np.int64)
            mon.late[EVENT_IDS] = [CategoricalArray(flags, REPEAT_LABELS)]
            mon.late_times[EVENT_IDS] = [np.full(len(flags), np.nan)]
        mon.segment_monitors = {
            (s["tag"], s["value"]): SegmentMonitor(
                {c["name"]: ColumnMonitor.from_dict(c, block, fraction, blobs) for c in s["columns"]
                 if c["name"] not in off}, int(s["events"]))
            for s in raw.get("segment_monitors") or []}
        mon.segments = {tag: {v: {c: stats_from_dict(s) for c, s in cols.items()} for v, cols in vals.items()}
                        for tag, vals in raw["segments"].items()}
        versions = raw.get("baseline_versions")  # (a state saved before it: not known, no late versions)
        mon.baseline_versions = set(versions) if versions is not None else None
        mon.late_versions = {value: [_batch_from_dict(b)] for value, b in (raw.get("late_versions") or {}).items()}
        mon.version_seen = {value: int(at) for value, at in (raw.get("version_seen") or {}).items()}
        known = raw.get("known_versions")
        mon.known_versions = set(known) if known is not None else None  # (a state saved before: not told)
        mon.new_versions = {value: int(at) for value, at in (raw.get("new_versions") or {}).items()}
        mon.new_version_count = int(raw.get("new_version_count", 0))
        mon.baseline_columns = list(raw.get("baseline_columns") or sorted(mon.columns))
        return mon


class Monitor:
    """All models of a stream.

    ``dirty`` names the models changed since the last :meth:`take_parts`,
    so a store can rewrite only those.
    """

    def __init__(self, config: MonitorConfig) -> None:
        self.config = config
        self.models: dict[str, ModelMonitor] = {}
        self.dirty: set[str] = set()

    def model(self, name: str) -> ModelMonitor:
        mon = self.models.get(name)
        if mon is None:
            mon = self.models[name] = ModelMonitor(name, self.config.for_model(name))
        return mon

    def fit_reference(self, reference: Batch, invalid: Mapping[str, set[str]] | None = None) -> None:
        self.dirty.add(reference.model)
        self.model(reference.model).fit(reference, invalid)

    def process(self, batch: Batch, rule_hits: np.ndarray | None = None,
                invalid: Mapping[str, tuple[np.ndarray, str | Sequence[str]]] | None = None) -> list[Alert]:
        self.dirty.add(batch.model)
        return self.model(batch.model).process(batch, rule_hits, invalid)

    def take_incidents(self, model: str) -> list[Alert]:
        """The incident records (alerts of kind ``incident``) the model's last :meth:`process` made, once."""
        mon = self.models.get(model)
        if mon is None:
            return []
        out, mon.policy.records = mon.policy.records, []
        return out

    def status(self) -> dict:
        return {name: m.status() for name, m in sorted(self.models.items())}

    def to_bytes(self) -> bytes:
        payload = {"version": STATE_VERSION, "models": [m.to_dict() for _, m in sorted(self.models.items())]}
        return msgspec.msgpack.encode(payload)

    @classmethod
    def from_bytes(cls, data: bytes, config: MonitorConfig,
                   config_of: Callable[[str], ModelConfig] | None = None) -> Monitor:
        """The monitor :meth:`to_bytes` saved; ``config_of`` gives a model's config by its name (default:
        ``config.for_model``), for a caller that made its models with configs of its own."""
        raw = msgspec.msgpack.decode(data)
        if raw.get("version") != STATE_VERSION:
            raise StateError(f"monitor state version {raw.get('version')!r} is not {STATE_VERSION}; rebuild the state")
        mon = cls(config)
        config_of = config_of or config.for_model
        for m in raw["models"]:
            mon.models[m["model"]] = ModelMonitor.from_dict(m, config_of(m["model"]))
        return mon

    def take_parts(self) -> tuple[dict[str, bytes], dict[str, bytes]]:
        """(model -> its state, digest -> fixed part) of the models changed since the last call.

        >>> mon = Monitor(MonitorConfig())
        >>> _ = mon.process(Batch("m", TextArray.from_list(["a"]), np.zeros(1), {"x": NumericArray(np.ones(1))}))
        >>> models, blobs = mon.take_parts()
        >>> list(models), mon.take_parts()
        (['m'], ({}, {}))
        """
        models: dict[str, bytes] = {}
        blobs: dict[str, bytes] = {}
        for name in sorted(self.dirty):
            models[name] = msgspec.msgpack.encode({"version": STATE_VERSION,
                                                   **self.models[name].to_dict(blobs)})
        self.dirty.clear()
        return models, blobs

    @classmethod
    def from_parts(cls, models: Mapping[str, bytes], blobs: Mapping[str, bytes], config: MonitorConfig) -> Monitor:
        """The monitor :meth:`take_parts` saved: every model's latest state, with the fixed parts they name."""
        mon = cls(config)
        for name, data in models.items():
            raw = msgspec.msgpack.decode(data)
            if not isinstance(raw, dict) or raw.get("version") != STATE_VERSION:
                found = raw.get("version") if isinstance(raw, dict) else type(raw).__name__
                raise StateError(f"model {name!r}: state version {found!r} is not {STATE_VERSION}; rebuild the state")
            mon.models[name] = ModelMonitor.from_dict(raw, config.for_model(name), blobs)
        return mon


def concat_batches(batches: list[Batch]) -> Batch:
    """Concatenate batches of one model; columns (and segment tags) missing from a batch are missing values."""
    names = sorted({k for b in batches for k in b.columns})
    columns = {}
    for name in names:
        kind = next(("numeric" if isinstance(b.columns[name], NumericArray) else "categorical")
                    for b in batches if name in b.columns)
        columns[name] = concat_columns([b.columns.get(name) or _empty_like(kind, len(b)) for b in batches])
    segments = {tag: cast(CategoricalArray, concat_columns([b.segments.get(tag) or _empty_like("categorical", len(b))
                                                             for b in batches]))
                for tag in sorted({k for b in batches for k in b.segments})}
    return Batch(
        batches[0].model,
        TextArray.concat([b.event_ids for b in batches]),
        np.concatenate([b.times for b in batches]),
        columns,
        segments,
    )


def _labels_to_dict(c: CategoricalArray) -> dict:
    return {"codes": c.codes.astype(np.int64).tobytes(), "categories": list(c.categories)}


def _labels_from_dict(raw: dict) -> CategoricalArray:
    return CategoricalArray(np.frombuffer(raw["codes"], dtype=np.int64).copy(), tuple(raw["categories"]))


def _batch_to_dict(b: Batch) -> dict:
    cols = {}
    for name, c in b.columns.items():
        if isinstance(c, NumericArray):
            cols[name] = {"kind": "numeric", "values": c.values.tobytes()}
        else:
            cols[name] = {"kind": "categorical", **_labels_to_dict(c)}
    tags = {tag: _labels_to_dict(c) for tag, c in b.segments.items()}
    return {"model": b.model, "event_ids": b.event_ids.tolist(), "times": b.times.tobytes(), "columns": cols,
            "segments": tags}


def _batch_from_dict(raw: dict) -> Batch:
    cols: dict[str, Column] = {}
    for name, c in raw["columns"].items():
        if c["kind"] == "numeric":
            cols[name] = NumericArray(np.frombuffer(c["values"], dtype=np.float64).copy())
        else:
            cols[name] = _labels_from_dict(c)
    tags = {tag: _labels_from_dict(c) for tag, c in (raw.get("segments") or {}).items()}
    return Batch(raw["model"], TextArray.from_list(raw["event_ids"]),
                 np.frombuffer(raw["times"], dtype=np.float64).copy(), cols, tags)
