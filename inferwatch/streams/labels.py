"""Delayed labels joined to their predictions, and the model's performance watched from them.

A labels record is ``{"event_id", "model", "timestamp", "label"}``:
``timestamp`` is when the label became known, ``label`` a number, a string
or a bool (for named outputs, an object of output name to label). A label
is joined to its prediction by ``(model, event_id)``:

* the stream's clock is the latest event time read so far; a label *arrives*
  when the clock reaches its ``timestamp`` (a replay reads the labels file
  alongside the events, in time order);
* a prediction waits for its label at most ``labels.max_delay`` of event
  time (default 7 days), then it is counted ``expired``; a label that
  arrives before its prediction waits for it as long;
* each joined pair is one row of the model's performance stream, in the
  order the labels arrived: ``error_rate`` for a classifier, ``abs_error``
  for a regression (:mod:`inferwatch.detectors.performance`), baselined on
  the model's first ``warmup_events`` joined pairs and watched by the same
  calibrated detectors as any column. Its alerts have ``kind:
  "performance"``, the metric as ``detector``, the output as ``feature``,
  the prediction's ``event_time`` and ``position``;
* with labels, each probability output also gets the label-free estimate
  ``estimated_error_rate`` (one row per prediction, in stream order), and
  the summary says how far it was from the realized error rate.

A pending prediction keeps its id, time, position and the outputs' values
(about 150 bytes in memory); ``labels.max_pending`` caps them per model
(the oldest are dropped and counted ``expired``).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from ..detectors.config import MonitorConfig
from ..detectors.monitor import ModelMonitor, Monitor
from ..detectors.performance import (
    ESTIMATED,
    as_performance,
    calibration_gap,
    estimate_columns,
    is_probability,
    outcome_columns,
)
from ..detectors.types import Alert, Batch, CategoricalArray, NumericArray, TextArray
from .decode import event_times

__all__ = ["LabelFeed", "PerformanceWatch"]


class _Label(msgspec.Struct):
    event_id: str
    model: str
    label: Any = None


class _Labelled(msgspec.Struct):
    """A reference event with its label inline."""

    model: str
    prediction: Any = None
    label: Any = None
    event_id: str = ""


_DECODE = msgspec.json.Decoder(_Label)
_REFERENCE = msgspec.json.Decoder(_Labelled)


@dataclass
class LabelFeed:
    """Labels in the order they became known: ``(time, model, event_id, label)``; unreadable lines counted."""

    records: list[tuple[float, str, str, Any]]
    unreadable: int = 0
    sent: int = 0

    @classmethod
    def from_lines(cls, lines: list[bytes]) -> LabelFeed:
        lines = [line for line in lines if line.strip()]
        times = event_times(lines)
        records, bad = [], 0
        for line, t in zip(lines, times.tolist()):
            try:
                label = _DECODE.decode(line)
            except msgspec.DecodeError:
                bad += 1
                continue
            if t != t or label.label is None:  # no usable time, or no label: nothing to join
                bad += 1
                continue
            records.append((t, label.model, label.event_id, label.label))
        records.sort(key=lambda r: r[0])  # stable: labels of one time keep the file's order
        return cls(records, bad)

    @classmethod
    def from_file(cls, path: str | Path) -> LabelFeed:
        return cls.from_lines(Path(path).read_bytes().splitlines())

    def until(self, clock: float) -> list[tuple[float, str, str, Any]]:
        """The labels known by event time ``clock`` and not given out before."""
        lo = self.sent
        hi = lo
        while hi < len(self.records) and self.records[hi][0] <= clock:
            hi += 1
        self.sent = hi
        return self.records[lo:hi]


@dataclass
class _Pending:
    time: float
    index: int
    event_id: str
    values: dict[str, Any]  # output -> the prediction (a number, a label's text, or None)


@dataclass
class _ModelJoin:
    waiting: OrderedDict = field(default_factory=OrderedDict)  # event_id -> _Pending, oldest first
    early: OrderedDict = field(default_factory=OrderedDict)  # event_id -> (label time, label): before the prediction
    rows: list[tuple[_Pending, Any]] = field(default_factory=list)  # joined, in arrival order, not yet watched
    resolved: list[tuple[_Pending, int]] = field(default_factory=list)  # (prediction, 0 labelled / 1 expired)


@dataclass
class LabelCounts:
    joined: int = 0
    expired: int = 0  # predictions whose label did not come within max_delay
    orphaned: int = 0  # labels whose prediction did not come within max_delay
    unreadable: int = 0
    waiting: int = 0  # predictions still waiting at the end


class PerformanceWatch:
    """The join and the two performance monitors (realized, estimated) of a pipeline given labels."""

    def __init__(self, config: MonitorConfig, feed: LabelFeed) -> None:
        self.config, self.feed = config, feed
        self.joins: dict[str, _ModelJoin] = {}
        self.realized = Monitor(config)
        self.estimated = Monitor(config)
        self.counts = LabelCounts(unreadable=feed.unreadable)
        self.probability: dict[tuple[str, str], bool] = {}  # (model, output) -> the output is a probability
        self.kinds: dict[tuple[str, str], str] = {}  # (model, output) -> numeric | categorical
        self.calibration: dict[tuple[str, str], tuple[float, float, float, int]] = {}
        self._first: dict[tuple[str, str], tuple[list, list]] = {}  # probabilities and labels until the warm-up
        self.delays: list[float] = []  # seconds from each joined prediction to its label
        self.coverage = Monitor(config)  # per model: labelled or not, per prediction, as each is resolved
        self.clock = -np.inf

    def fit_reference(self, lines) -> int:
        """Baselines from reference events that carry their ``label`` inline (the others are skipped): the
        realized performance's, the estimate's, and the estimate's calibration. Returns the labelled events."""
        by_output: dict[tuple[str, str], tuple[list, list]] = {}
        for line in lines:
            try:
                event = _REFERENCE.decode(line)
            except msgspec.DecodeError:
                continue
            if event.label is None or event.prediction is None:
                continue
            outputs = event.prediction if isinstance(event.prediction, dict) else {"": event.prediction}
            for out, value in outputs.items():
                label = event.label.get(out) if isinstance(event.label, dict) else event.label
                if label is None or value is None or isinstance(value, (dict, list)):
                    continue
                held = by_output.setdefault((event.model, f"prediction.{out}" if out else "prediction"), ([], []))
                held[0].append(value)
                held[1].append(label)
        used = 0
        for (model, output), (values, labels) in sorted(by_output.items()):
            numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
            if numeric:
                predicted: Any = NumericArray(np.array(values, dtype=np.float64))
                self.kinds[(model, output)] = "numeric"
                self.probability[(model, output)] = is_probability(predicted.values)
            else:
                text = [str(v).lower() if isinstance(v, bool) else str(v) for v in values]
                cats = tuple(sorted(set(text)))
                predicted = CategoricalArray(np.array([cats.index(t) for t in text], dtype=np.int64), cats)
                self.kinds[(model, output)] = "categorical"
            n = len(values)
            ids, times = TextArray.from_list([""] * n), np.zeros(n)
            columns = outcome_columns(predicted, labels, self.probability.get((model, output)))
            lane = _lane(self.realized, model, output)
            self.realized.models[lane].fit(Batch(lane, ids, times, columns))
            if self.probability.get((model, output)):
                lane = _lane(self.estimated, model, output)
                self.estimated.models[lane].fit(Batch(lane, ids, times, estimate_columns(predicted)))
                self.calibration[(model, output)] = calibration_gap(predicted.values, labels)
            used += n
        return used

    def _join(self, model: str) -> _ModelJoin:
        join = self.joins.get(model)
        if join is None:
            join = self.joins[model] = _ModelJoin()
        return join

    def predictions(self, batch: Batch, rows: np.ndarray) -> list[tuple[int, str, str, Alert]]:
        """A model batch's predictions: wait for their labels (or meet the ones already there); the estimate."""
        outputs = {name: col for name, col in batch.columns.items() if name == "prediction"
                   or name.startswith("prediction.")}
        if not outputs:
            return []
        values: dict[str, list] = {}
        for name, col in outputs.items():
            key = (batch.model, name)
            if isinstance(col, NumericArray):
                self.kinds.setdefault(key, "numeric")
                self.probability.setdefault(key, is_probability(col.values))
                values[name] = [None if v != v else v for v in col.values.tolist()]
            else:
                assert isinstance(col, CategoricalArray)
                self.kinds.setdefault(key, "categorical")
                values[name] = [col.categories[c] if c >= 0 else None for c in col.codes.tolist()]
        join, cap = self._join(batch.model), self.config.for_model(batch.model).labels.max_pending
        ids = batch.event_ids.tolist()
        for i, event_id in enumerate(ids):
            pending = _Pending(float(batch.times[i]), int(rows[i]), event_id, {k: v[i] for k, v in values.items()})
            early = join.early.pop(event_id, None)
            if early is not None:
                self._joined(join, pending, early[1], early[0])
                continue
            join.waiting[event_id] = pending
            join.waiting.move_to_end(event_id)
            if len(join.waiting) > cap:
                self._expired(join, join.waiting.popitem(last=False)[1])
        return self._estimate(batch, outputs, rows)

    def _estimate(self, batch: Batch, outputs: dict, rows: np.ndarray) -> list[tuple[int, str, str, Alert]]:
        out = []
        for name, col in outputs.items():
            if not (isinstance(col, NumericArray) and self.probability.get((batch.model, name))):
                continue
            model = _lane(self.estimated, batch.model, name)
            found = self.estimated.process(Batch(model, batch.event_ids, batch.times, estimate_columns(col)))
            out += [(int(rows[a.row]), name, ESTIMATED, as_performance(replace_model(a, batch.model), name))
                    for a in found]
        return out

    def arrive(self, clock: float) -> list[tuple[int, str, str, Alert]]:
        """Labels known by ``clock`` joined; expired predictions and labels dropped; joined pairs watched."""
        self.clock = max(self.clock, clock)
        for t, model, event_id, label in self.feed.until(self.clock):
            join = self._join(model)
            pending = join.waiting.pop(event_id, None)
            if pending is not None and t - pending.time <= self._horizon(model):
                self._joined(join, pending, label, t)
            elif pending is not None:
                self._expired(join, pending)
            else:
                join.early[event_id] = (t, label)
        self._expire()
        return self._watch()

    def finish(self) -> list[tuple[int, str, str, Alert]]:
        """The end of the stream: every label still to come arrives; what still waits is counted."""
        found = self.arrive(np.inf)
        self.counts.waiting = sum(len(j.waiting) for j in self.joins.values())
        self.counts.orphaned += sum(len(j.early) for j in self.joins.values())
        for join in self.joins.values():
            join.early.clear()
        return found

    def _joined(self, join: _ModelJoin, pending: _Pending, label: Any, at: float) -> None:
        join.rows.append((pending, label))
        join.resolved.append((pending, 0))
        self.delays.append(at - pending.time)

    def _expired(self, join: _ModelJoin, pending: _Pending) -> None:
        join.resolved.append((pending, 1))
        self.counts.expired += 1

    def _horizon(self, model: str) -> float:
        return self.config.for_model(model).labels.max_delay

    def _expire(self) -> None:
        if not np.isfinite(self.clock):
            return
        for model, join in self.joins.items():
            horizon = self._horizon(model)
            while join.waiting:
                first = next(iter(join.waiting.values()))
                if self.clock - first.time <= horizon:
                    break
                self._expired(join, join.waiting.popitem(last=False)[1])
            while join.early:
                t, _ = next(iter(join.early.values()))
                if self.clock - t <= horizon:
                    break
                join.early.popitem(last=False)
                self.counts.orphaned += 1

    def _watch(self) -> list[tuple[int, str, str, Alert]]:
        out: list[tuple[int, str, str, Alert]] = []
        for model, join in sorted(self.joins.items()):
            if join.resolved:  # the share of predictions labelled within max_delay, watched like a column
                done, join.resolved = join.resolved, []
                codes = np.array([code for _, code in done], dtype=np.int64)
                lane = _lane(self.coverage, model, "prediction")
                coverage = CategoricalArray(codes, ("labelled", "unlabelled"))
                found = self.coverage.process(Batch(lane, TextArray.from_list([p.event_id for p, _ in done]),
                                                    np.array([p.time for p, _ in done]), {"label_coverage": coverage}))
                out += [(done[a.row][0].index, "prediction", "label_coverage",
                         replace(a, model=model, kind="data_quality", detector="label_coverage", feature="prediction"))
                        for a in found]
            if not join.rows:
                continue
            rows, join.rows = join.rows, []
            self.counts.joined += len(rows)
            outputs = sorted({name for pending, _ in rows for name in pending.values})
            for name in outputs:
                label_of = (lambda lb, name=name: lb.get(name[len("prediction."):]) if isinstance(lb, dict) else lb)
                labels = [label_of(label) for _, label in rows]
                ids = TextArray.from_list([p.event_id for p, _ in rows])
                times = np.array([p.time for p, _ in rows])
                index = np.array([p.index for p, _ in rows], dtype=np.int64)
                key = (model, name)
                if self.kinds.get(key) == "categorical":
                    shown = [p.values.get(name) for p, _ in rows]
                    cats = tuple(sorted({s for s in shown if s is not None}))
                    codes = np.array([cats.index(s) if s is not None else -1 for s in shown], dtype=np.int64)
                    predicted: Any = CategoricalArray(codes, cats)
                else:
                    predicted = NumericArray(np.array([np.nan if p.values.get(name) is None
                                                       else float(p.values[name]) for p, _ in rows]))
                    if self.probability.get(key) and key not in self.calibration:
                        self._calibration(key, predicted.values, labels)
                columns = outcome_columns(predicted, labels, self.probability.get(key))
                found = self.realized.process(Batch(_lane(self.realized, model, name), ids, times, columns))
                out += [(int(index[a.row]), name, a.feature or "", as_performance(replace_model(a, model), name))
                        for a in found]
        return out

    def _calibration(self, key: tuple[str, str], predicted: np.ndarray, labels: list) -> None:
        """The estimate against the realized error on the model's first labelled predictions (its warm-up)."""
        warmup = self.config.for_model(key[0]).warmup_events
        held = self._first.setdefault(key, ([], []))
        held[0].extend(predicted.tolist())
        held[1].extend(labels)
        if len(held[0]) >= warmup:
            self.calibration[key] = calibration_gap(np.array(held[0][:warmup]), held[1][:warmup])
            del self._first[key]

    def summary(self) -> list[str]:
        """Lines for the run's summary: the join's counts, and each estimate against the realized error."""
        c = self.counts
        lines = [f"labels: {c.joined:,} joined, {c.expired:,} predictions expired unlabelled, {c.orphaned:,} labels "
                 f"without their prediction, {c.unreadable:,} unreadable, {c.waiting:,} predictions still waiting"]
        if self.delays:
            q = np.percentile(self.delays, [50, 90, 99])
            lines.append(f"label delay (event time): median {_span(q[0])}, 90 % {_span(q[1])}, 99 % {_span(q[2])}")
        for (model, output), (est, real, se, n) in sorted(self.calibration.items()):
            trusted = abs(est - real) <= 2 * se + 0.005
            lines.append(f"estimate {model} {output}: estimated error rate {est:.1%} against {real:.1%} realized "
                         f"(+/- {se:.1%}) on {n:,} labelled predictions: "
                         + ("the scores look calibrated" if trusted else "not calibrated: do not trust the estimate"))
        return lines


def _lane(monitor: Monitor, model: str, output: str) -> str:
    """The name of (model, output)'s performance stream in ``monitor``, made with the model's config."""
    name = model if output == "prediction" else f"{model}\x1f{output}"
    if name not in monitor.models:
        monitor.models[name] = ModelMonitor(name, monitor.config.for_model(model))
    return name


def replace_model(alert: Alert, model: str) -> Alert:
    return replace(alert, model=model)


def _span(seconds: float) -> str:
    """A duration for a person: ``90 s``, ``12.5 min``, ``3.2 h``, ``2.1 d``."""
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if abs(seconds) >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"
