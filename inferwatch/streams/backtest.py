"""Backtest: several configs over the same events, compared.

Each config replays the same file (or topic range) through the core with
in-memory state, exactly as ``replay`` would, while a :class:`Trace`
records what a report needs per model and column: each detector's
evidence over its threshold at every chunk, the missing rate, category
counts and a thinned sample of values. The runs are then compared: alerts,
what each rule would have done, and the first firing per column.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson

from ..detectors.config import MonitorConfig
from ..detectors.guard import ACTIONS
from ..detectors.monitor import Monitor
from ..detectors.types import Batch, CategoricalArray, NumericArray
from .pipeline import SCHEMA_SAMPLE_LINES, Pipeline
from .replay import ReplaySummary, reference_blocks, replay_file

__all__ = ["ColumnTrace", "ModelTrace", "PerformanceTrace", "ConfigRun", "run_config", "backtest", "difference_rows",
           "performance_trace"]

TRACE_CHUNK = 500  # lines per chunk: the trace's time resolution (results do not depend on it)
SAMPLE_PER_CHUNK = 100
BASELINE_SAMPLE = 20_000  # numeric baseline values kept per column (the reference's, or the warm-up's)


@dataclass
class ColumnTrace:
    kind: str
    ratio: dict[str, list[float]] = field(default_factory=dict)  # detector -> evidence / threshold per point
    missing: list[float] = field(default_factory=list)
    counts: list[dict[str, int]] = field(default_factory=list)  # categorical: label counts per point
    sample_times: list[np.ndarray] = field(default_factory=list)  # numeric: thinned values
    sample_values: list[np.ndarray] = field(default_factory=list)
    # the baseline (the reference's events, or the warm-up's): what "before" is compared with
    baseline_values: list[np.ndarray] = field(default_factory=list)  # numeric: present values (a sample)
    baseline_counts: dict[str, int] = field(default_factory=dict)  # categorical: label counts
    baseline_events: int = 0
    baseline_missing: int = 0
    monitored: bool = False  # the column has detectors (a disabled column is left out of the report)


@dataclass
class PerformanceTrace:
    """A probability output's error rate through time, per window of predictions: realized (from the labels
    that came) and estimated from the scores alone (the mean of ``min(p, 1 - p)``, the label-free estimate)."""

    times: list[float]
    realized: list[float]  # NaN where no prediction of the window got its label
    estimated: list[float]
    labelled: list[int]


PERFORMANCE_WINDOWS = 60


def performance_trace(scored: list[tuple[np.ndarray, list, np.ndarray]], labels: dict[str, float]
                      ) -> PerformanceTrace | None:
    """Windows of a model's scored predictions (in stream order) against their labels (event id -> 0/1)."""
    if not scored:
        return None
    times = np.concatenate([t for t, _, _ in scored])
    ids = [i for _, part, _ in scored for i in part]
    p = np.concatenate([v for _, _, v in scored])
    label = np.array([labels.get(i, np.nan) for i in ids])
    out = PerformanceTrace([], [], [], [])
    for part in np.array_split(np.arange(len(p)), min(PERFORMANCE_WINDOWS, len(p))):
        known = part[~np.isnan(label[part]) & ~np.isnan(p[part])]
        out.times.append(float(np.median(times[part])))
        wrong = (p[known] >= 0.5) != (label[known] >= 0.5)
        out.realized.append(float(wrong.mean()) if known.size else float("nan"))
        present = p[part][~np.isnan(p[part])]
        out.estimated.append(float(np.minimum(present, 1 - present).mean()) if present.size else float("nan"))
        out.labelled.append(int(known.size))
    return out


@dataclass
class ModelTrace:
    times: list[float] = field(default_factory=list)  # each point's median event time
    columns: dict[str, ColumnTrace] = field(default_factory=dict)
    events: int = 0  # stream events seen (the warm-up's are the first ``live_from``)
    # a probability output's predictions, for the realized-vs-estimated figure (with labels)
    scored: list[tuple[np.ndarray, list, np.ndarray]] = field(default_factory=list)  # (times, event ids, p)
    performance: PerformanceTrace | None = None
    rule_labels: list[str] = field(default_factory=list)
    rule_actions: list[str] = field(default_factory=list)
    violations: np.ndarray | None = None  # per rule
    actions: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ACTIONS, 0))  # events per final action


@dataclass
class ConfigRun:
    name: str
    summary: ReplaySummary
    alerts: list[dict]
    models: dict[str, ModelTrace]

    def first_firing(self, drift_first: bool = False) -> dict[tuple[str, str], dict]:
        """(model, column) -> its first firing alert (``drift_first``: its first drift alert, if it has one, and
        never a performance alert: those are about the labels, not the column's values)."""
        out: dict[tuple[str, str], dict] = {}
        for a in self.alerts:
            if a["status"] == "firing" and a["kind"] != "incident" and not (drift_first and a["kind"] == "performance"):
                key = (a["model"], a["feature"] or "(model)")
                if key not in out or (drift_first and a["kind"] == "drift" and out[key]["kind"] != "drift"):
                    out[key] = a
        return out


def _baseline(trace: ModelTrace, batch: Batch, rows: slice) -> None:
    """Add ``batch[rows]`` to each column's baseline."""
    for name, column in batch.columns.items():
        numeric = isinstance(column, NumericArray)
        ct = trace.columns.setdefault(name, ColumnTrace("numeric" if numeric else "categorical"))
        if numeric:
            values = column.values[rows]
            present = values[~np.isnan(values)]
            room = BASELINE_SAMPLE - sum(len(v) for v in ct.baseline_values)
            if room > 0:
                ct.baseline_values.append(present[:room])
            missing = len(values) - len(present)
        else:
            assert isinstance(column, CategoricalArray)
            codes = column.codes[rows]
            missing = int((codes < 0).sum())
            found, counts = np.unique(codes[codes >= 0], return_counts=True)
            for c, k in zip(found.tolist(), counts.tolist()):
                label = column.categories[c]
                ct.baseline_counts[label] = ct.baseline_counts.get(label, 0) + k
        ct.baseline_events += len(values) if numeric else len(codes)
        ct.baseline_missing += missing


def reference_observer(models: dict[str, ModelTrace]) -> Callable:
    """Records reference events as each column's baseline."""
    def observe(batch: Batch, *_) -> None:
        _baseline(models.setdefault(batch.model, ModelTrace()), batch, slice(None))
    return observe


def _observer(models: dict[str, ModelTrace], with_reference: bool) -> Callable:
    def observe(batch: Batch, hits, monitor: Monitor, _alerts) -> None:
        trace = models.setdefault(batch.model, ModelTrace())
        mon = monitor.models[batch.model]
        if not with_reference and mon.live_from is not None and trace.events < mon.live_from:
            _baseline(trace, batch, slice(0, mon.live_from - trace.events))  # the warm-up is the baseline
        elif not with_reference and mon.live_from is None:
            _baseline(trace, batch, slice(None))
        trace.events += len(batch)
        rules = mon.config.rules
        if rules and not trace.rule_labels:
            trace.rule_labels = [r.label for r in rules]
            trace.rule_actions = [r.action for r in rules]
            trace.violations = np.zeros(len(rules), dtype=np.int64)
        if hits is not None:
            trace.violations += hits.sum(axis=1)
            ranks = np.array([ACTIONS.index(a) for a in trace.rule_actions])
            strongest = np.where(hits, ranks[:, None], 0).max(axis=0)
            for rank, count in zip(*np.unique(strongest, return_counts=True)):
                trace.actions[ACTIONS[rank]] += int(count)
        else:
            trace.actions["pass"] += len(batch)
        trace.times.append(float(np.median(batch.times)))  # an event stamped far off does not move the point
        scores = batch.columns.get("prediction")
        if isinstance(scores, NumericArray) and len(scores) and np.nanmin(scores.values) >= 0 \
                and np.nanmax(scores.values) <= 1:
            trace.scored.append((batch.times.copy(), batch.event_ids.tolist(), scores.values.copy()))
        point = len(trace.times) - 1
        for name, column in batch.columns.items():
            numeric = isinstance(column, NumericArray)
            ct = trace.columns.setdefault(name, ColumnTrace("numeric" if numeric else "categorical"))
            monitored = mon.columns.get(name)
            ct.monitored = ct.monitored or (monitored is not None and monitored.lanes is not None)
            if monitored is not None:
                for det, ratio in monitored.evidence().items():
                    ct.ratio.setdefault(det, [float("nan")] * point).append(ratio)
            for series in ct.ratio.values():
                series.extend([float("nan")] * (point + 1 - len(series)))
            if numeric:
                missing = np.isnan(column.values)
                step = max(1, len(column) // SAMPLE_PER_CHUNK)
                keep = np.flatnonzero(~missing)[::step]
                ct.sample_times.append(batch.times[keep])
                ct.sample_values.append(column.values[keep])
            else:
                assert isinstance(column, CategoricalArray)
                missing = column.codes < 0
                codes, counts = np.unique(column.codes[~missing], return_counts=True)
                ct.counts.append({column.categories[c]: int(k) for c, k in zip(codes, counts)})
            ct.missing.append(float(missing.mean()) if len(column) else 0.0)
    return observe


def run_config(name: str, config: MonitorConfig, file: Path | None = None, reference: Path | None = None,
               topic: tuple | None = None, labels: Path | None = None) -> ConfigRun:
    """Replay one config over a file (with its ``labels``, if any), or over ``topic = (bootstrap, topic, start,
    end)``."""
    models: dict[str, ModelTrace] = {}
    out = io.BytesIO()
    if reference is not None:  # the reference's events, decoded as the stream's are: each column's baseline
        blocks = reference_blocks(reference) or []
        pipe = Pipeline.build(config, [line for block in blocks for line in block][:SCHEMA_SAMPLE_LINES])
        for block in blocks:
            pipe.step(block, observer=reference_observer(models))
    observe = _observer(models, reference is not None)
    if file is not None:
        summary = replay_file(file, config, out, reference=reference, observer=observe,
                              lines_per_chunk=TRACE_CHUNK, labels=labels)
    else:
        from .topic_replay import replay_topic

        bootstrap, name_of_topic, start, end = topic
        summary = replay_topic(bootstrap, name_of_topic, start, end, config, out, reference=reference,
                               observer=observe, lines_per_chunk=TRACE_CHUNK)
    alerts = [orjson.loads(line) for line in out.getvalue().splitlines()]
    if labels is not None:  # the realized against the estimated error rate, per model with a probability output
        from ..detectors.performance import labels_of
        from .labels import LabelFeed

        feed = LabelFeed.from_file(labels)
        known = labels_of(feed.labels)
        for model, trace in models.items():
            given = {i: float(v) for m, i, v in zip(feed.models, feed.ids, known) if m == model and v == v}
            trace.performance = performance_trace(trace.scored, given)
    for trace in models.values():
        trace.scored = []
    return ConfigRun(name, summary, alerts, models)


def backtest(configs: list[tuple[str, MonitorConfig]], file: Path | None = None, reference: Path | None = None,
             topic: tuple | None = None, labels: Path | None = None) -> list[ConfigRun]:
    return [run_config(name, cfg, file, reference, topic, labels) for name, cfg in configs]


def difference_rows(runs: list[ConfigRun]) -> list[tuple[str, list[str]]]:
    """(what, value per config) rows comparing the runs: totals, guard actions, rules, first firings."""
    rows: list[tuple[str, list[str]]] = [
        ("events", [f"{r.summary.events:,}" for r in runs]),
        ("dead letters", [f"{r.summary.dead_letters:,}" for r in runs]),
        ("alerts firing / resolved", [f"{r.summary.firing} / {r.summary.resolved}" for r in runs]),
    ]
    if any(r.summary.labels for r in runs):  # with labels: the join's counts (the same for every config)
        rows.append(("labels", [r.summary.labels[0].removeprefix("labels: ") if r.summary.labels else "-"
                                for r in runs]))
    models = sorted({m for r in runs for m in r.models})
    for model in models:
        traces = [r.models.get(model, ModelTrace()) for r in runs]
        for action in ACTIONS[1:]:
            rows.append((f"{model}: events {action}", [f"{t.actions.get(action, 0):,}" for t in traces]))
        labels = sorted({label for t in traces for label in t.rule_labels})
        for label in labels:
            cells = []
            for t in traces:
                if label in t.rule_labels:
                    i = t.rule_labels.index(label)
                    cells.append(f"{int(t.violations[i]):,} ({t.rule_actions[i]})")
                else:
                    cells.append("-")
            rows.append((f"{model}: rule {label}", cells))
    firsts = [r.first_firing() for r in runs]
    for key in sorted({k for f in firsts for k in f}):
        cells = []
        for f in firsts:
            a = f.get(key)
            cells.append("-" if a is None else f"{_where(a['position'])} {a['detector']}")
        rows.append((f"{key[0]}: first firing on {key[1]}", cells))
    return rows


def _where(position) -> str:
    if isinstance(position, dict):
        return f"p{position['partition']}@{position['offset']}"
    return f"line {position}"
