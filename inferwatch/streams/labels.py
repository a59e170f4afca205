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
  order the pairs were joined (``labels.settle``: in prediction order):
  ``error_rate`` for a classifier, ``abs_error`` for a regression
  (:mod:`inferwatch.detectors.performance`), baselined on
  the model's first ``warmup_events`` joined pairs and watched by the same
  calibrated detectors as any column. Its alerts have ``kind:
  "performance"``, the metric as ``detector``, the output as ``feature``,
  the prediction's ``event_time`` and ``position``;
* with labels, each probability output also gets the label-free estimate
  ``estimated_error_rate`` (one row per prediction, in stream order), and
  the summary says how far it was from the realized error rate.

A pending prediction keeps its id, time, position, the outputs' values and
its segment tags' values (:mod:`inferwatch.streams.pending`: about 140 bytes
in memory); ``labels.max_pending``
caps them per model (the oldest are dropped and counted ``expired``).
"""

from __future__ import annotations

import itertools
import operator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
from datasketches import kll_doubles_sketch

from ..detectors.config import ColumnConfig, ModelConfig, MonitorConfig
from ..detectors.monitor import EVENT_REPEAT, ModelMonitor, Monitor
from ..detectors.performance import (
    ESTIMATED,
    METRIC_COLUMNS,
    METRICS,
    as_performance,
    calibration_gap,
    estimate_columns,
    is_probability,
    outcome_columns,
    run_length,
)
from ..detectors.stats import KLL_K
from ..detectors.types import Alert, Batch, CategoricalArray, NumericArray, TextArray
from ..errors import StateError
from .decode import _times
from .lines import BOM
from .pending import Pending, Rows, objects

__all__ = ["LabelFeed", "PerformanceWatch", "PLACE_SOURCE", "from_labels", "places"]

PLACE_SOURCE = 1 << 40  # a pending prediction's place on Kafka: source partition * PLACE_SOURCE + offset


def places(partitions: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """The places of messages read on Kafka (partition, offset), as the join keeps them for its alerts."""
    return partitions.astype(np.int64) * PLACE_SOURCE + offsets.astype(np.int64)


def from_labels(alert: Alert) -> bool:
    """An alert of the label join: its index is a prediction's place (possibly of an earlier step)."""
    return alert.kind == "performance" or alert.detector in ("label_coverage", "label_delay")


class _Label(msgspec.Struct):
    event_id: str | int | float  # a number is taken as its text, as in events (7.0, as a table export has it: 7)
    model: str
    timestamp: Any = None
    label: Any = None


class _TextLabel(msgspec.Struct):
    """The usual label: its event id is text."""

    event_id: str
    model: str
    timestamp: Any = None
    label: Any = None


class _Labelled(msgspec.Struct):
    """A reference event with its label inline."""

    model: str
    prediction: Any = None
    label: Any = None
    event_id: str = ""
    tags: Any = None


STATE_VERSION = 3  # of PerformanceWatch.to_bytes (1: pending predictions as a dict of tuples; 2: no label
# delay start, no held pairs; both still read)
LEVEL_TAIL = 256  # a mean metric's latest values kept for the words of its alerts
# the label delays a model's labels show until its clock has run this many times their 99th percentile are
# cut short by the clock itself (a 5-minute delay cannot be seen 2 minutes in): its label_delay lane starts then
DELAY_SETTLE = 1.5
DELAY_SETTLE_LABELS = 100  # ...once this many came after their prediction
SETTLE_CHECK = 100  # (checked every this many labels of the model)
SETTLE_TOP = 1000  # (the largest delays kept until then)

_DECODE = msgspec.json.Decoder(_Label)
_LABEL, _TIMESTAMP = operator.attrgetter("label"), operator.attrgetter("timestamp")
_EVENT_ID, _MODEL = operator.attrgetter("event_id"), operator.attrgetter("model")
_DECODE_ALL = msgspec.json.Decoder(list[_Label])
_DECODE_TEXT_IDS = msgspec.json.Decoder(list[_TextLabel])
_REFERENCE = msgspec.json.Decoder(_Labelled)


@dataclass
class LabelFeed:
    """Labels in the order they became known (columns: times, models, event ids, labels); unreadable lines
    counted (no ``event_id``, ``model``, usable ``timestamp`` or ``label``)."""

    times: np.ndarray
    models: list[str]
    ids: list[str]
    labels: list[Any]
    unreadable: int = 0
    sent: int = 0

    @classmethod
    def from_lines(cls, lines: list[bytes]) -> LabelFeed:
        """Blank lines are skipped; the others are labels, or counted unreadable."""
        whole, text_ids = b"[" + b",".join(lines) + b"]", True
        try:  # the usual file or batch: every line a label with a text id, read in one call
            records: list[Any] = _DECODE_TEXT_IDS.decode(whole)
        except (msgspec.DecodeError, RecursionError):
            text_ids = False
            try:
                records = _DECODE_ALL.decode(whole)
            except (msgspec.DecodeError, RecursionError):  # some line is not a label: each read alone
                records = []
                for line in lines:
                    if not line.strip():
                        continue
                    try:
                        records.append(_DECODE.decode(line))
                    except (msgspec.DecodeError, RecursionError):  # (nested too deeply)
                        records.append(None)
        labels = list(map(_LABEL, records)) if text_ids else []
        if text_ids and None not in labels:  # the usual: every record a label (read by attrgetter: C speed)
            good = records
        else:
            good = [r for r in records if r is not None and r.label is not None]
            labels = list(map(_LABEL, good))
        times = _times(list(map(_TIMESTAMP, good))) if good else np.empty(0)
        usable = ~np.isnan(times)
        if usable.all() and not (np.diff(times) < 0).any():  # the usual: readable, in time order already
            ids = list(map(_EVENT_ID, good)) if text_ids else [_id_text(r.event_id) for r in good]
            return cls(times, list(map(_MODEL, good)), ids, labels, len(records) - len(good))
        order = np.flatnonzero(usable)[np.argsort(times[usable], kind="stable")]  # labels of one time: file order
        keep = order.tolist()
        return cls(times[order], [good[i].model for i in keep], [_id_text(good[i].event_id) for i in keep],
                   [good[i].label for i in keep], len(records) - len(keep))

    @classmethod
    def from_file(cls, path: str | Path) -> LabelFeed:
        data = Path(path).read_bytes()
        return cls.from_lines(data.removeprefix(BOM).splitlines())

    @classmethod
    def empty(cls) -> LabelFeed:
        return cls(np.empty(0), [], [], [])

    def append(self, lines: list[bytes]) -> int:
        """More labels (a live worker's, as its merge releases them): kept in time order with the ones not given
        out yet. Returns the unreadable lines among them."""
        return self.add(LabelFeed.from_lines(lines))

    def add(self, *more: LabelFeed) -> int:
        """:meth:`append`, of labels already read (the feeds of one batch joined in one copy)."""
        lo = self.sent
        times = np.concatenate([self.times[lo:], *(m.times for m in more)])
        models, ids, labels = self.models[lo:], self.ids[lo:], self.labels[lo:]  # (copies: extended here)
        for m in more:
            models.extend(m.models)
            ids.extend(m.ids)
            labels.extend(m.labels)
        if (np.diff(times) < 0).any():  # (the usual labels topic comes in time order: nothing to sort)
            order = np.argsort(times, kind="stable")
            keep = order.tolist()
            times = times[order]
            models, ids, labels = [models[i] for i in keep], [ids[i] for i in keep], [labels[i] for i in keep]
        self.times, self.models, self.ids, self.labels = times, models, ids, labels
        self.sent = 0
        unreadable = sum(m.unreadable for m in more)
        self.unreadable += unreadable
        return unreadable

    def to_dict(self) -> dict:
        """The labels not given out yet."""
        lo = self.sent
        return {"times": self.times[lo:].astype("<f8").tobytes(), "models": self.models[lo:], "ids": self.ids[lo:],
                "labels": self.labels[lo:], "unreadable": self.unreadable}

    @classmethod
    def from_dict(cls, raw: dict) -> LabelFeed:
        times = np.frombuffer(raw["times"], dtype="<f8").astype(np.float64)
        models, ids, labels = list(raw["models"]), list(raw["ids"]), list(raw["labels"])
        if not len(times) == len(models) == len(ids) == len(labels):
            raise ValueError("the labels feed's columns differ in length")
        return cls(times, models, ids, labels, int(raw["unreadable"]))

    def until(self, clock: float) -> tuple[int, int]:
        """The range of the labels known by event time ``clock`` and not given out before."""
        lo = self.sent
        self.sent = max(lo, int(np.searchsorted(self.times, clock, side="right")))
        return lo, self.sent


@dataclass
class _ModelJoin:
    outputs: tuple[str, ...] = ()  # the model's prediction columns, in the order of a pending entry's values
    segments: tuple[str, ...] = ()  # the model's segment tags, whose values follow the outputs' in an entry
    waiting: Pending | None = None  # the predictions waiting (None until the model's first prediction)
    early: dict = field(default_factory=dict)  # event_id -> (label time, label): before their prediction
    first: float = np.inf  # the event time of the model's first prediction
    delays: Any = None  # until its label_delay lane starts, what _settled_from keeps (None once started)
    held: Any = None  # with labels.settle: the joined pairs not yet watched (a list of _Held)
    # not yet watched (always empty between steps: each step ends by watching them):
    joined: list = field(default_factory=list)  # [(pending rows, labels, label times)]
    resolved: list = field(default_factory=list)  # [(pending rows, 0 labelled / 1 expired)]


@dataclass
class LabelCounts:
    joined: int = 0
    expired: int = 0  # predictions whose label did not come within max_delay
    orphaned: int = 0  # labels whose prediction did not come within max_delay
    unreadable: int = 0
    waiting: int = 0  # predictions still waiting at the end
    resent: int = 0  # predictions whose event_id came again while they waited (the later one waits)


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
        self.delays = kll_doubles_sketch(KLL_K)  # seconds from each joined prediction to its label (quantiles)
        self.coverage = Monitor(config)  # per model: labelled or not, per prediction, as each is resolved
        self.delay = Monitor(config)  # per model: each joined prediction's wait for its label, in seconds
        self.clock = -np.inf
        self.end = np.inf  # the stream's clock at its end: labels known later are not watched for delay or coverage
        # mean metrics, per (model, output, metric, segment ("" or "tag=value")): the baseline (sum and count of
        # the values, the model's rows taken so far: done at warmup_events), the latest values
        self.baseline: dict[tuple[str, str, str, str], tuple[float, int, int]] = {}
        self.tails: dict[tuple[str, str, str, str], np.ndarray] = {}
        self.places: np.ndarray | None = None  # per line of a step: what its predictions' alerts give as index

    def to_bytes(self) -> bytes:
        """The join (pending predictions and early labels), its counts, the three monitors and the labels not
        given out yet: a live worker's state (:meth:`from_bytes`)."""
        joins = {m: {"outputs": list(j.outputs), "segments": list(j.segments),
                     "waiting": None if j.waiting is None else j.waiting.to_dict(), "early": j.early,
                     "first": j.first, "delays": None if j.delays is None else
                     {**j.delays, "top": j.delays["top"].astype("<f8").tobytes()},
                     "held": None if j.held is None else _held_to_dict(j.held)}
                 for m, j in self.joins.items()}
        return msgspec.msgpack.encode({
            "version": STATE_VERSION, "feed": self.feed.to_dict(), "joins": joins,
            "counts": vars(self.counts),
            "kinds": [[m, o, k] for (m, o), k in self.kinds.items()],
            "probability": [[m, o, p] for (m, o), p in self.probability.items()],
            "calibration": [[m, o, list(c)] for (m, o), c in self.calibration.items()],
            "first": [[m, o, list(a), list(b)] for (m, o), (a, b) in self._first.items()],
            "baseline": [[*k, *v] for k, v in self.baseline.items()],
            "tails": [[*k, v.astype("<f8").tobytes()] for k, v in self.tails.items()],
            "delay_sketch": self.delays.serialize(), "clock": self.clock, "realized": self.realized.to_bytes(),
            "estimated": self.estimated.to_bytes(), "coverage": self.coverage.to_bytes(),
            "delay": self.delay.to_bytes()})

    @classmethod
    def from_bytes(cls, data: bytes, config: MonitorConfig) -> PerformanceWatch:
        """The watch :meth:`to_bytes` saved; :class:`StateError` when it is not one."""
        try:
            raw = msgspec.msgpack.decode(data)
            version = raw.get("version")
            if version not in (1, 2, STATE_VERSION):
                raise StateError(f"the labels state has version {version!r}, this inferwatch reads 1 to "
                                 f"{STATE_VERSION}")
            watch = cls(config, LabelFeed.from_dict(raw["feed"]))
            for model, j in raw["joins"].items():
                outputs, segments = tuple(j["outputs"]), tuple(j.get("segments", ()))
                width, saved = len(outputs) + len(segments), j["waiting"]
                waiting = (None if saved is None or (not outputs and not saved) else
                           Pending.from_entries(saved, width) if version == 1 else Pending.from_dict(saved, width))
                early = {k: tuple(e) for k, e in j["early"].items()}
                delays = j.get("delays") if version == STATE_VERSION else None  # (saved before: its lane started)
                if delays is not None:
                    delays = {**delays, "top": np.frombuffer(delays["top"], dtype="<f8").astype(np.float64)}
                watch.joins[model] = _ModelJoin(outputs, segments, waiting, early, float(j.get("first", np.inf)),
                                                delays,
                                                None if j.get("held") is None else _held_from_dict(
                                                    j["held"], width, config.for_model(model).labels.settle))
            watch.counts = LabelCounts(**raw["counts"])
            watch.kinds = {(m, o): k for m, o, k in raw["kinds"]}
            watch.probability = {(m, o): bool(p) for m, o, p in raw["probability"]}
            watch.calibration = {(m, o): tuple(c) for m, o, c in raw["calibration"]}
            watch._first = {(m, o): (list(a), list(b)) for m, o, a, b in raw["first"]}
            watch.tails = {(m, o, k, g): np.frombuffer(v, dtype="<f8").astype(np.float64)
                           for m, o, k, g, v in raw.get("tails", [])}
            watch.baseline = {(m, o, k, g): (float(t), int(n), int(d))
                              for m, o, k, g, t, n, d in raw.get("baseline", [])}
            if "delay_sketch" in raw:
                watch.delays = kll_doubles_sketch.deserialize(bytes(raw["delay_sketch"]))
            else:  # saved by inferwatch 0.2 (the latest delays themselves)
                watch.delays.update(np.frombuffer(raw["delays"], dtype="<f8").astype(np.float64))
            watch.clock = float(raw["clock"])
            lane_config = (lambda lane: _lane_config(config, lane))
            watch.realized = Monitor.from_bytes(raw["realized"], config, lane_config)
            watch.estimated = Monitor.from_bytes(raw["estimated"], config, lane_config)
            watch.coverage = Monitor.from_bytes(raw["coverage"], config, lane_config)
            if "delay" in raw:
                watch.delay = Monitor.from_bytes(raw["delay"], config, lane_config)
        except StateError:
            raise
        except Exception as exc:  # a document that decodes but is not a state: name what broke
            raise StateError(f"the labels state is unreadable ({type(exc).__name__}: {exc})") from None
        return watch

    def fit_reference(self, lines) -> int:
        """Baselines from reference events that carry their ``label`` inline (the others are skipped): the
        realized performance's, the estimate's, and the estimate's calibration. Returns the labelled events."""
        by_output: dict[tuple[str, str], tuple[list, list, list]] = {}
        for line in lines:
            try:
                event = _REFERENCE.decode(line)
            except (msgspec.DecodeError, RecursionError):
                continue
            if event.label is None or event.prediction is None:
                continue
            outputs = event.prediction if isinstance(event.prediction, dict) else {"": event.prediction}
            for out, value in outputs.items():
                label = event.label.get(out) if isinstance(event.label, dict) else event.label
                if label is None or value is None or isinstance(value, (dict, list)):
                    continue
                held = by_output.setdefault((event.model, f"prediction.{out}" if out else "prediction"),
                                            ([], [], []))
                held[0].append(value)
                held[1].append(label)
                held[2].append(event.tags if isinstance(event.tags, dict) else {})
        used = 0
        for (model, output), (values, labels, tags) in sorted(by_output.items()):
            numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
            if numeric:
                predicted: Any = NumericArray(np.array(values, dtype=np.float64))
                self.kinds[(model, output)] = "numeric"
                self.probability[(model, output)] = is_probability(predicted.values)
            else:
                predicted = _categorical([str(v).lower() if isinstance(v, bool) else str(v) for v in values])
                self.kinds[(model, output)] = "categorical"
            n = len(values)
            ids, times = TextArray.from_list([""] * n), np.zeros(n)
            columns = outcome_columns(predicted, labels, self.probability.get((model, output)),
                                      self.config.for_model(model).labels.metrics)
            segments = {tag: _categorical([_tag(t.get(tag)) for t in tags])
                        for tag in self.config.for_model(model).segments}
            lane = _lane(self.realized, model, output)
            self.realized.models[lane].fit(Batch(lane, ids, times, columns, segments))
            self._baseline(model, output, columns, segments, whole=True)
            if self.probability.get((model, output)):
                lane = _lane(self.estimated, model, output)
                self.estimated.models[lane].fit(Batch(lane, ids, times, estimate_columns(predicted), segments))
                self.calibration[(model, output)] = calibration_gap(predicted.values, labels)
            used += n
        return used

    def _join(self, model: str) -> _ModelJoin:
        join = self.joins.get(model)
        if join is None:
            join = self.joins[model] = _ModelJoin()
        return join

    def predictions(self, batch: Batch, rows: np.ndarray, first_index: int = 0) -> list[tuple[int, str, str, Alert]]:
        """A model batch's predictions (at ``rows`` of a step whose first line is ``first_index``): wait for
        their labels (or meet the ones already there); the estimate."""
        outputs = {name: col for name, col in batch.columns.items() if name == "prediction"
                   or name.startswith("prediction.")}
        if not outputs:
            return []
        join = self._join(batch.model)
        if join.waiting is None:
            join.outputs = tuple(sorted(outputs))
            join.segments = tuple(self.config.for_model(batch.model).segments)
            join.waiting = Pending(len(join.outputs) + len(join.segments))
            join.delays = _fresh_delays()
        if len(batch) and not np.isfinite(join.first):
            known = batch.times[np.isfinite(batch.times)]
            join.first = float(known.min()) if known.size else join.first
        n = len(batch)
        values: list[Any] = []
        for name in join.outputs:
            col, key = outputs.get(name), (batch.model, name)
            if isinstance(col, NumericArray):
                self.kinds.setdefault(key, "numeric")
                self.probability.setdefault(key, is_probability(col.values))
                values.append(col.values)  # NaN: no prediction
            elif isinstance(col, CategoricalArray):
                self.kinds.setdefault(key, "categorical")
                values.append(_labels_of(col))
            else:
                values.append(np.full(n, None, dtype=object))
        for tag in join.segments:  # the prediction's segment, for the performance of each segment
            seg = batch.segments.get(tag)
            values.append(np.full(n, None, dtype=object) if seg is None else _labels_of(seg))
        ids = batch.event_ids.tolist()
        index = self.places[rows - first_index] if self.places is not None else np.asarray(rows, dtype=np.int64)
        times, places = batch.times, index
        if join.early:  # labels that came first: joined now, at the prediction
            met = np.fromiter(map(join.early.__contains__, ids), dtype=bool, count=n)
            if met.any():
                at_prediction = np.flatnonzero(met)
                got = [join.early.pop(ids[i]) for i in at_prediction.tolist()]
                self._joined(join, Rows([ids[i] for i in at_prediction.tolist()], times[at_prediction],
                                        places[at_prediction], [v[at_prediction].astype(object) for v in values]),
                             [label for _, label in got], np.array([t for t, _ in got], dtype=np.float64))
                fresh = np.flatnonzero(~met)
                ids = [ids[i] for i in fresh.tolist()]
                times, places, values = times[fresh], places[fresh], [v[fresh] for v in values]
        self.counts.resent += join.waiting.add(ids, times, places, values)  # an id again: the later waits
        over = len(join.waiting) - self.config.for_model(batch.model).labels.max_pending
        if over > 0:
            self._expired(join, join.waiting.oldest(over))
        return self._estimate(batch, outputs, index)

    def _estimate(self, batch: Batch, outputs: dict, rows: np.ndarray) -> list[tuple[int, str, str, Alert]]:
        out = []
        for name, col in outputs.items():
            if not (isinstance(col, NumericArray) and self.probability.get((batch.model, name))):
                continue
            model = _lane(self.estimated, batch.model, name)
            found = self.estimated.process(Batch(model, batch.event_ids, batch.times, estimate_columns(col),
                                                 batch.segments))
            out += [(int(rows[a.row]), name, ESTIMATED, as_performance(a, name, batch.model))
                    for a in found]
        return out

    def arrive(self, clock: float) -> list[tuple[int, str, str, Alert]]:
        """Labels known by ``clock`` joined; expired predictions and labels dropped; joined pairs watched."""
        self.clock = max(self.clock, clock)
        lo, hi = self.feed.until(self.clock)
        if hi > lo:
            f = self.feed
            models = f.models[lo:hi]
            times_all, ids_all, labels_all = f.times[lo:hi].tolist(), f.ids[lo:hi], f.labels[lo:hi]
            if models.count(models[0]) == len(models):  # the usual: one model's labels
                groups = {models[0]: (ids_all, times_all, labels_all)}
            else:
                groups = {}
                for m, event_id, t, label in zip(models, ids_all, times_all, labels_all):
                    g = groups.setdefault(m, ([], [], []))
                    g[0].append(event_id)
                    g[1].append(t)
                    g[2].append(label)
            for model, (ids, at, given) in groups.items():
                join, horizon = self._join(model), self._horizon(model)
                if join.waiting is None:  # no prediction of the model yet: every label waits for its prediction
                    self._wait_for_prediction(join, ids, at, given)
                    continue
                found, waited = join.waiting.take(ids)
                at = np.asarray(at, dtype=np.float64)
                if waited is not None:  # labels before their prediction: they wait for it
                    first = np.flatnonzero(~waited).tolist()
                    self._wait_for_prediction(join, [ids[i] for i in first], at[first].tolist(),
                                              [given[i] for i in first])
                    at, given = at[waited], list(itertools.compress(given, waited.tolist()))
                late = at - found.times > horizon
                if late.any():  # labels that came after their prediction expired
                    self._expired(join, found.subset(late))
                    keep = ~late
                    found, at, given = found.subset(keep), at[keep], list(itertools.compress(given, keep.tolist()))
                if len(found):
                    self._joined(join, found, given, at)
        self._expire()
        return self._watch()

    def _wait_for_prediction(self, join: _ModelJoin, ids: list, at: list, given: list) -> None:
        """Labels whose prediction has not come: they wait for it. A second label for one id is counted
        without its prediction (the first one is applied, as for a label that comes after its prediction's)."""
        before = len(join.early)
        for event_id, t, label in zip(ids, at, given):
            join.early.setdefault(event_id, (float(t), label))
        self.counts.orphaned += before + len(ids) - len(join.early)

    def finish(self) -> list[tuple[int, str, str, Alert]]:
        """The end of the stream: every label still to come arrives; what still waits is counted. Labels known
        after the stream's last event count and are watched for performance, not for delay or coverage (only
        the slowest of the last predictions' labels are still to come: their delays say nothing of a change)."""
        self.end = self.clock
        found = self.arrive(np.inf)
        self.counts.waiting = self._waiting()
        self.counts.orphaned += sum(len(j.early) for j in self.joins.values())
        for join in self.joins.values():
            join.early.clear()
        return found

    def _joined(self, join: _ModelJoin, rows: Rows, labels: list, at: np.ndarray) -> None:
        join.joined.append((rows, labels, at))
        join.resolved.append((rows, 0))

    def _expired(self, join: _ModelJoin, rows: Rows) -> None:
        join.resolved.append((rows, 1))
        self.counts.expired += len(rows)

    def _horizon(self, model: str) -> float:
        return self.config.for_model(model).labels.max_delay

    def _expire(self) -> None:
        if not np.isfinite(self.clock):
            return
        for model, join in self.joins.items():
            horizon = self._horizon(model)
            if join.waiting is not None:
                old = join.waiting.waited_past(self.clock, horizon)
                if len(old):
                    self._expired(join, old)
            gone = []
            for event_id, (t, _) in join.early.items():
                if self.clock - t <= horizon:
                    break
                gone.append(event_id)
            for k in gone:
                del join.early[k]
            self.counts.orphaned += len(gone)

    def _watch(self) -> list[tuple[int, str, str, Alert]]:
        out: list[tuple[int, str, str, Alert]] = []
        for model, join in sorted(self.joins.items()):
            resolved, joined, join.resolved, join.joined = join.resolved, join.joined, [], []
            # the usual: every prediction resolved here was joined (none expired): its rows are read once
            same = len(resolved) == len(joined) and all(r[0] is j[0] and r[1] == 0 for r, j in zip(resolved, joined))
            rows = _rows([j[0] for j in joined]) if joined else None
            labels_all = [label for _, part, _ in joined for label in part]
            at = np.concatenate([part for _, _, part in joined]) if joined else np.empty(0)
            if rows is not None:  # labels met at their prediction (early) and labels that came: in join order
                rows, labels_all, at = _in_join_order(rows, labels_all, at)
            if resolved and np.isfinite(self.end):  # the stream has ended: what resolves now is not watched
                resolved = []
            if resolved:  # the share of predictions labelled within max_delay, watched like a column
                out += self._watch_coverage(model, join, resolved, joined, (rows, at) if same else None)
            if rows is not None:
                self.counts.joined += len(rows[1])
            settle = self.config.for_model(model).labels.settle
            if settle > 0:
                rows, labels_all, at = self._settled(join, rows, labels_all, at, settle)
            if rows is None:
                continue
            ids, entries, times, index = rows
            self.delays.update(at - times)
            found = self._watch_delay(model, join, ids, times, at)
            out += [(int(index[a.row]), "prediction", "label_delay",
                     replace(a, model=model, kind="data_quality", detector="label_delay", feature="prediction",
                             message=a.message.replace("label_delay: ", "prediction: label delay (seconds) ", 1)
                             .replace(" events", " labelled predictions", 1))) for a in found]
            first = len(join.outputs)
            segments = {tag: _categorical(entries.values[first + k].tolist()) for k, tag in enumerate(join.segments)}
            for k, name in enumerate(join.outputs):
                label_of = (lambda lb, name=name: lb.get(name[len("prediction."):]) if isinstance(lb, dict) else lb)
                labels = labels_all if join.outputs == ("prediction",) else [label_of(lb) for lb in labels_all]
                key = (model, name)
                shown = entries.values[k]
                if self.kinds.get(key) == "categorical":
                    predicted: Any = _categorical(shown.tolist())
                else:
                    predicted = NumericArray(shown.astype(np.float64))
                    if self.probability.get(key) and key not in self.calibration:
                        self._calibration(key, predicted.values, labels)
                columns = outcome_columns(predicted, labels, self.probability.get(key),
                                          self.config.for_model(model).labels.metrics)
                self._baseline(model, name, columns, segments)
                found = self.realized.process(Batch(_lane(self.realized, model, name), ids, times, columns,
                                                    segments))
                out += [(int(index[a.row]), name, a.feature or "",
                         as_performance(a, name, model, self._levels(model, name, columns, segments, a)))
                        for a in found]
                self._carry(model, name, columns, segments)
        return out

    def _watch_coverage(self, model: str, join: _ModelJoin, resolved: list, joined: list,
                        all_joined: tuple | None) -> list[tuple[int, str, str, Alert]]:
        """Each resolved prediction labelled or not, in the order they were resolved (a label's time, or when
        the prediction expired), from the model's first ``max_delay`` on: before, none could have expired,
        and the share labelled would be all of them. ``all_joined``: (rows, label times) in join order, when
        every prediction resolved was joined."""
        horizon = self._horizon(model)
        if all_joined is None:
            rows = _rows([part for part, _ in resolved])
            at = {id(part): when for part, _, when in joined}
            when = np.concatenate([np.maximum(at[id(part)], part.times) if code == 0 else
                                   np.minimum(part.times + horizon, self.clock) for part, code in resolved])
            codes = np.concatenate([np.full(len(part), code, dtype=np.int64) for part, code in resolved])
        else:
            rows, at = all_joined
            when = np.maximum.accumulate(np.maximum(at, rows[2]))  # (in join order already)
            codes = np.zeros(len(when), dtype=np.int64)
        ids, entries, times, index = rows
        keep = np.flatnonzero(when >= join.first + horizon)
        if not keep.size:
            return []
        keep = keep[np.lexsort((_id_keys(ids)[keep], when[keep]))]
        lane = _lane(self.coverage, model, "prediction")
        coverage = CategoricalArray(codes[keep], ("labelled", "unlabelled"))
        found = self.coverage.process(Batch(lane, ids.take(keep), times[keep], {"label_coverage": coverage}))
        return [(int(index[keep[a.row]]), "prediction", "label_coverage",
                 replace(a, model=model, kind="data_quality", detector="label_coverage", feature="prediction",
                         message=_coverage_words(a.message))) for a in found]

    def _settled(self, join: _ModelJoin, rows: tuple | None, labels: list, at: np.ndarray, settle: float
                 ) -> tuple[tuple | None, list, np.ndarray]:
        """``labels.settle``: each joined pair is watched once the clock reaches its prediction's time plus
        ``settle`` (its label's time, if later: a label later still is watched when it comes), in that
        order, then by prediction time: the same order however the stream was cut into steps. The others
        are held (in chunks sorted by that time: a step touches what it releases, not all it holds); all
        are watched at the end."""
        held = join.held if join.held is not None else []
        if rows is not None:
            held.append(_Held.of(rows[1], labels, at, settle))
        line = np.inf if np.isfinite(self.end) else self.clock
        out = [part for chunk in held for part in [chunk.release(line)] if part is not None]
        held = [chunk for chunk in held if chunk.left()]
        join.held = held or None
        if not out:
            return None, [], at
        released = (Rows.concat([o[0] for o in out]), [x for o in out for x in o[1]],
                    np.concatenate([o[2] for o in out]))
        if len(out) > 1:  # (each chunk in its order already)
            released = _held_take(released, _release_order(released[0], released[2], settle))
        return _rows([released[0]]), released[1], released[2]

    def _watch_delay(self, model: str, join: _ModelJoin, ids: TextArray, times: np.ndarray, at: np.ndarray
                     ) -> list[Alert]:
        """Joined predictions' waits for their labels (in join order), watched from the first label by which
        they have settled (:func:`_settled_from`); not the labels known after the stream's end, nor (with
        ``labels.settle``) the pairs still held at the end: only their quicker labels could have come."""
        delays, n = at - times, len(at)
        rows = np.arange(n)
        if np.isfinite(self.end):  # the labels known after the end, and the pairs held then, are cut short
            settle = self.config.for_model(model).labels.settle
            rows = np.flatnonzero((at <= self.end) & ~(times > self.end - settle))
        if join.delays is not None:
            start = _settled_from(join, np.maximum(at, times)[rows], delays[rows])
            if start is None:
                return []
            rows = rows[start:]
        if not rows.size:
            return []
        if rows.size < n:
            ids, times, delays = ids.take(rows), times[rows], delays[rows]
        found = self.delay.process(Batch(_lane(self.delay, model, "prediction"), ids, times,
                                         {"label_delay": NumericArray(delays)}))
        return [replace(a, row=int(rows[a.row])) for a in found] if rows.size < n else found

    def _baseline(self, model: str, output: str, columns: dict, segments: dict, whole: bool = False) -> None:
        """Each mean metric's baseline level, over the same labelled predictions as its detectors' baseline:
        the model's first ``warmup_events`` (a segment's: its predictions among them), or all of a labelled
        reference (``whole``)."""
        warmup = self.config.for_model(model).warmup_events
        for metric, col in columns.items():
            rows_seen = self.baseline.get((model, output, metric, ""), (0.0, 0, 0))[2]
            if not isinstance(col, NumericArray) or rows_seen >= warmup:
                continue
            cut = len(col.values) if whole else min(warmup - rows_seen, len(col.values))
            for part, rows in _parts(segments, cut):
                key = (model, output, metric, part)
                total, n, _ = self.baseline.get(key, (0.0, 0, 0))
                values = col.values[:cut] if rows is None else col.values[rows]
                present = values[~np.isnan(values)]
                self.baseline[key] = (total + float(present.sum()), n + len(present),
                                      max(rows_seen + cut, warmup) if whole else rows_seen + cut)

    def _levels(self, model: str, output: str, columns: dict, segments: dict, alert: Alert
                ) -> tuple[float, float] | None:
        """(baseline, now) of a mean metric at a firing (of the model, or of its segment): now is its mean over
        the firing's run (its latest ``LEVEL_TAIL`` values at most, earlier batches' included: the words do
        not depend on batch cuts)."""
        part = "" if not alert.segment else ",".join(f"{k}={v}" for k, v in sorted(alert.segment.items()))
        key = (model, output, alert.feature or "", part)
        col, base = columns.get(key[2]), self.baseline.get(key)
        if not isinstance(col, NumericArray) or base is None or not base[1] or alert.status != "firing":
            return None
        upto = col.values[:alert.row + 1]
        if alert.segment:
            (tag, value), = alert.segment.items()
            seg = segments.get(tag)
            if seg is None or value not in seg.categories:
                return None
            upto = upto[seg.codes[:alert.row + 1] == seg.categories.index(value)]
        recent = np.concatenate([self.tails.get(key, np.empty(0)), upto[~np.isnan(upto)]])
        recent = recent[-min(run_length(alert), LEVEL_TAIL):]
        return (base[0] / base[1], float(recent.mean())) if recent.size else None

    def _carry(self, model: str, output: str, columns: dict, segments: dict) -> None:
        for metric, col in columns.items():
            if isinstance(col, NumericArray):
                for part, rows in _parts(segments, len(col.values)):
                    key = (model, output, metric, part)
                    values = col.values if rows is None else col.values[rows]
                    present = values[~np.isnan(values)][-LEVEL_TAIL:]
                    self.tails[key] = np.concatenate([self.tails.get(key, np.empty(0)), present])[-LEVEL_TAIL:]

    def _calibration(self, key: tuple[str, str], predicted: np.ndarray, labels: list) -> None:
        """The estimate against the realized error on the model's first labelled predictions (its warm-up)."""
        warmup = self.config.for_model(key[0]).warmup_events
        held = self._first.setdefault(key, ([], []))
        held[0].extend(predicted.tolist())
        held[1].extend(labels)
        if len(held[0]) >= warmup:
            self.calibration[key] = calibration_gap(np.array(held[0][:warmup]), held[1][:warmup])
            del self._first[key]

    def evidence(self) -> list[tuple[str, str, str, str, float]]:
        """(model, output, metric, segment, evidence over threshold) of the realized and estimated performance
        and of the label coverage, as alerts name them (1 is where one fires)."""
        strongest: dict[tuple[str, str, str, str], float] = {}
        for monitor in (self.realized, self.estimated, self.coverage, self.delay):
            for lane, mon in sorted(monitor.models.items()):
                model, _, output = lane.partition("\x1f")
                for metric, _, segment, ratio in mon.evidence():  # the metric's detectors: the strongest
                    key = (model, output or "prediction", metric, segment)
                    strongest[key] = max(strongest.get(key, 0.0), ratio)
        return [(*key, ratio) for key, ratio in strongest.items()]

    def progress(self) -> dict[str, int]:
        """The join's counts so far, and the predictions waiting now."""
        return {**vars(self.counts), "waiting": self._waiting()}

    def _waiting(self) -> int:
        return sum(len(j.waiting) for j in self.joins.values() if j.waiting is not None)

    def summary(self) -> list[str]:
        """Lines for the run's summary: the join's counts, and each estimate against the realized error."""
        c = self.counts
        lines = [f"labels: {c.joined:,} joined, {c.expired:,} predictions expired unlabelled, {c.orphaned:,} labels "
                 f"without their prediction, {c.unreadable:,} unreadable, {c.waiting:,} predictions still waiting"
                 + (f", {c.resent:,} predictions sent again while they waited (the later one waited)" if c.resent
                    else "")]
        if not self.delays.is_empty():
            q = self.delays.get_quantiles([0.5, 0.9, 0.99])
            lines.append(f"label delay (event time): median {_span(q[0])}, 90 % {_span(q[1])}, 99 % {_span(q[2])}")
        for (model, output), (est, real, se, n) in sorted(self.calibration.items()):
            trusted = abs(est - real) <= 2 * se + 0.005
            lines.append(f"estimate {model} {output}: estimated error rate {est:.1%} against {real:.1%} realized "
                         f"(+/- {se:.1%}) on {n:,} labelled predictions: "
                         + ("the scores look calibrated" if trusted else "not calibrated: do not trust the estimate"))
        return lines


def _rows(parts: list[Rows]) -> tuple[TextArray, Rows, np.ndarray, np.ndarray]:
    """The event ids (as a column), rows, times and places of pending rows taken out, in order."""
    rows = Rows.concat(parts)
    return TextArray.from_list(rows.ids), rows, rows.times, rows.places


def _id_text(event_id: str | int | float) -> str:
    """A label's event id as the events' ids are kept: text; a whole float (``7.0``) as its integer (``7``)."""
    if isinstance(event_id, float):
        return str(int(event_id)) if event_id.is_integer() else repr(event_id)
    return str(event_id)


def _coverage_words(message: str) -> str:
    """A coverage alert's message in the words of labels (the column's detectors speak of shares and labels).

    >>> _coverage_words("label_coverage: share of 'unlabelled' rose from 1.06% to about 100.00% over ~13 events")
    'prediction: share of predictions left unlabelled rose from 1.06% to about 100.00% over ~13 resolved predictions'
    """
    for said, meant in (("label_coverage: ", "prediction: "),
                        ("share of 'unlabelled'", "share of predictions left unlabelled"),
                        ("share of 'labelled'", "share of predictions labelled"),
                        ("share of labels never seen in the reference", "share of predictions left unlabelled "
                                                                         "(none in the baseline)"),
                        (" (e.g. 'unlabelled')", ""), (" events", " resolved predictions")):
        message = message.replace(said, meant, 1)
    return message


_ID_WEIGHTS = np.random.default_rng(20261204).integers(1, 2**63, 256, dtype=np.uint64)  # fixed: the same every run


def _id_keys(ids: TextArray) -> np.ndarray:
    """A fixed pseudo-random key per event id (a polynomial hash of its bytes): an order unrelated to the ids'
    own, the same wherever the events were read from (a file's lines or a topic's offsets)."""
    offsets = ids.offsets.astype(np.int64)
    first, lengths = int(offsets[0]), np.diff(offsets)
    raw = np.frombuffer(ids.data, dtype=np.uint8)[first:int(offsets[-1])].astype(np.uint64) + np.uint64(1)
    position = np.arange(len(raw)) - np.repeat(offsets[:-1] - first, lengths)
    with np.errstate(over="ignore"):
        terms = np.append(raw * _ID_WEIGHTS[position % len(_ID_WEIGHTS)], np.uint64(0))
        sums = np.add.reduceat(terms, offsets[:-1] - first) if len(lengths) else np.empty(0, dtype=np.uint64)
        sums[lengths == 0] = 0
        return _mixed(sums ^ lengths.astype(np.uint64))


def _mixed(x: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finalizer: ids that differ in a digit get unrelated keys (a sum alone keeps the
    ids' order in a pattern)."""
    with np.errstate(over="ignore"):
        x = x ^ (x >> np.uint64(33))
        x = x * np.uint64(0xFF51AFD7ED558CCD)
        x = x ^ (x >> np.uint64(33))
        x = x * np.uint64(0xC4CEB9FE1A85EC53)
        return x ^ (x >> np.uint64(33))


@dataclass
class _Held:
    """Joined pairs held by ``labels.settle``, sorted by when they are due (:func:`_due`); those before
    ``start`` released."""

    entries: Rows
    labels: list
    at: np.ndarray
    due: np.ndarray
    start: int = 0

    @classmethod
    def of(cls, entries: Rows, labels: list, at: np.ndarray, settle: float) -> _Held:
        order = _release_order(entries, at, settle)
        entries, labels, at = _held_take((entries, labels, at), order)
        return cls(entries, labels, at, _due(entries.times, at, settle))

    def left(self) -> bool:
        return self.start < len(self.entries)

    def release(self, line: float) -> tuple | None:
        """The pairs (rows, labels, label times) due by ``line``, now released."""
        stop = int(np.searchsorted(self.due, line, side="right"))
        if stop <= self.start:
            return None
        a, self.start = self.start, stop
        return self.entries.slice(a, stop), self.labels[a:stop], self.at[a:stop]

    def rest(self) -> tuple:
        a = self.start
        return self.entries.slice(a), self.labels[a:], self.at[a:]


def _time_keys(times: np.ndarray) -> np.ndarray:
    """Prediction times to order by: a prediction without a usable time first (it is released at once)."""
    return np.where(np.isnan(times), -np.inf, times)


def _due(times: np.ndarray, at: np.ndarray, settle: float) -> np.ndarray:
    """When held pairs are watched: their prediction's time plus ``settle``, or their label's if later."""
    return np.maximum(_time_keys(times) + settle, at)


def _release_order(entries: Rows, at: np.ndarray, settle: float) -> np.ndarray:
    """Held pairs in the order they are watched: when due, then prediction time, then event id."""
    ids = TextArray.from_list(entries.ids)
    return np.lexsort((_id_keys(ids), _time_keys(entries.times), _due(entries.times, at, settle)))


def _held_take(held: tuple, order: np.ndarray) -> tuple:
    entries, labels, at = held
    return entries.take(order), [labels[i] for i in order.tolist()], at[order]


def _held_to_dict(held: list) -> dict:
    rests = [chunk.rest() for chunk in held]
    entries = Rows.concat([r[0] for r in rests])
    labels, at = [x for r in rests for x in r[1]], np.concatenate([r[2] for r in rests])
    return {"ids": entries.ids, "times": entries.times.astype("<f8").tobytes(),
            "places": entries.places.astype("<i8").tobytes(), "values": [c.tolist() for c in entries.values],
            "labels": labels, "at": at.astype("<f8").tobytes()}


def _held_from_dict(raw: dict, width: int, settle: float) -> list:
    entries = Rows(list(raw["ids"]), np.frombuffer(raw["times"], dtype="<f8").astype(np.float64),
                   np.frombuffer(raw["places"], dtype="<i8").astype(np.int64), [objects(v) for v in raw["values"]])
    at = np.frombuffer(raw["at"], dtype="<f8").astype(np.float64)
    if len(entries.values) != width or any(len(x) != len(entries) for x in (entries.times, entries.places, at,
                                                                              raw["labels"], *entries.values)):
        raise ValueError("the held pairs' columns differ in shape")
    return [_Held.of(entries, list(raw["labels"]), at, settle)]


def _in_join_order(rows: tuple, labels: list, at: np.ndarray) -> tuple[tuple, list, np.ndarray]:
    """Joined pairs ordered by when each was joined: its label's time, or its prediction's if the label came
    first (a step joins the early labels at their predictions before the labels that came). Pairs joined at
    one time (labels delivered in batches) are shuffled by their event ids, the same way on every run: in
    prediction order, a batch of a day's labels would run from its longest delay to its shortest."""
    ids, entries, times, index = rows
    when = np.maximum(at, times)
    if not (np.diff(when) <= 0).any():
        return rows, labels, at
    order = np.lexsort((_id_keys(ids), when))
    taken, labels, at = _held_take((entries, labels, at), order)
    return (ids.take(order), taken, times[order], index[order]), labels, at


def _settled_from(join: _ModelJoin, when: np.ndarray, delays: np.ndarray) -> int | None:
    """The first of these joined labels (``when``: the times they were joined) to be watched for delay, or None.

    A model's delays have settled at the first label, counted every ``SETTLE_CHECK`` (so the answer does not
    depend on how the labels were batched; a check waits for the last label of its time), by which
    ``DELAY_SETTLE_LABELS`` labels came after their
    prediction and the model's clock has run ``DELAY_SETTLE`` times the 99th percentile of its delays so far
    (from the largest ``SETTLE_TOP`` kept: exact up to 100,000 labels, higher after). Labels that always
    come before their prediction have no delay to watch.
    """
    state = join.delays
    n0, delays = int(state["n"]), np.where(np.isnan(delays), 0.0, delays)  # (no usable time: no delay)
    clock = np.maximum.accumulate(np.concatenate([[state["clock"]], when]))[1:]
    came = int(state["came"]) + np.cumsum(delays > 0)
    top, lo = state["top"], 0
    # checked every SETTLE_CHECK labels, each check after the last label of its time (labels delivered in
    # batches come at one time: the check sees the whole batch's delays, not the earlier batches' alone)
    ends = np.append(np.flatnonzero(np.diff(clock) > 0), len(delays) - 1)
    marks = np.arange(SETTLE_CHECK - 1 - n0 % SETTLE_CHECK, len(delays), SETTLE_CHECK)
    for i in np.unique(ends[np.searchsorted(ends, marks)]).tolist() if len(delays) else []:
        top, lo = _largest(np.concatenate([top, delays[lo:i + 1]])), i + 1
        rank = -(-(n0 + i + 1) // 100)  # the 99th percentile: the rank-th largest delay
        p99 = top[min(rank, len(top)) - 1]
        if came[i] >= DELAY_SETTLE_LABELS and clock[i] - join.first >= DELAY_SETTLE * max(p99, 0.0):
            join.delays = None
            return i + 1
    join.delays = {"n": n0 + len(delays), "came": int(came[-1]) if len(delays) else int(state["came"]),
                   "top": _largest(np.concatenate([top, delays[lo:]])),
                   "clock": float(clock[-1]) if len(delays) else float(state["clock"])}
    return None


def _largest(values: np.ndarray) -> np.ndarray:
    """The ``SETTLE_TOP`` largest values, largest first."""
    if len(values) > SETTLE_TOP:
        values = np.partition(values, len(values) - SETTLE_TOP)[-SETTLE_TOP:]
    return np.sort(values)[::-1]


def _fresh_delays() -> dict:
    return {"n": 0, "came": 0, "top": np.empty(0), "clock": -np.inf}


def _labels_of(col: CategoricalArray) -> np.ndarray:
    """A categorical column's labels, as objects (None: missing)."""
    return objects((*col.categories, None))[col.codes]


def _lane(monitor: Monitor, model: str, output: str) -> str:
    """The name of (model, output)'s performance stream in ``monitor``, made with the model's config."""
    name = model if output == "prediction" else f"{model}\x1f{output}"
    if name not in monitor.models:
        monitor.models[name] = ModelMonitor(name, _lane_config(monitor.config, name))
    return name


def _lane_config(config: MonitorConfig, lane: str) -> ModelConfig:
    """A performance lane's config: its model's, with the metrics' columns watched as METRIC_COLUMNS says, and
    neither a metric's decimals nor the predictions' event ids (the model's own monitor watches its ids)."""
    columns = {metric: ColumnConfig(type=kind, detectors=detectors)  # type: ignore[arg-type]
               for metric, (kind, detectors) in METRIC_COLUMNS.items()}
    off = ColumnConfig(enabled=False)
    columns.update({f"{metric}.decimals": off for metric in (*METRICS, "label_delay", ESTIMATED)})
    columns[EVENT_REPEAT] = off
    return config.for_model(lane.partition("\x1f")[0]).model_copy(update={"columns": columns, "monitor_unlisted": True})


def _categorical(labels: list) -> CategoricalArray:
    """Predicted classes as a column (None: missing)."""
    cats = tuple(sorted({v for v in labels if v is not None}))
    code = {c: i for i, c in enumerate(cats)}
    return CategoricalArray(np.array([code[v] if v is not None else -1 for v in labels], dtype=np.int64), cats)


def _parts(segments: dict, n: int):
    """("", None) for the whole model, then ("tag=value", rows) for each segment value present in ``n`` rows."""
    yield "", None
    for tag, seg in segments.items():
        codes = seg.codes[:n]
        for code in np.unique(codes[codes >= 0]).tolist():
            yield f"{tag}={seg.categories[code]}", np.flatnonzero(codes == code)


def _tag(value: Any) -> str | None:
    """A tag's value as a segment label, as the events' decoder gives it (None: missing)."""
    if value is None or isinstance(value, (dict, list)):
        return None
    return str(value).lower() if isinstance(value, bool) else str(value)


def _span(seconds: float) -> str:
    """A duration for a person: ``90 s``, ``12.5 min``, ``3.2 h``, ``2.1 d``."""
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if abs(seconds) >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"
