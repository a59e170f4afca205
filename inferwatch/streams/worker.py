"""The live worker: the core on Kafka partitions, state in Redis, exactly-once counting.

The worker is a Faust app (``faust.Worker`` runs it: lifecycle, signals,
logging, web server) whose one task reads the events topic in batches with
librdkafka's consumer (confluent-kafka) in a thread of its own. Faust's
per-event agent stream costs about 120 us an event on this machine
(``benchmarks/worker.py`` measures a bare agent at ~8,000 events/s), and
aiokafka ~3 us a record (a Python object each, on the event loop), both more
than the monitoring itself, so the events go through neither; what the
worker publishes goes through librdkafka's producer (:mod:`.publish`).

Per partition batch:

1. skip every event below the partition's stored next offset;
2. decode, guard and run the core in one pass; publish alerts (keyed by
   model), dead letters and, when the config has rules, every event's guard
   decision to the guarded-outputs topic; wait for the broker's acks;
3. write the new state and the next offset in one compare-and-set (Lua).

When a partition is assigned, its state is loaded from Redis and the
consumer seeks to the stored next offset: Redis is the truth, Kafka's
committed offsets are only a hint written afterwards. A crash between 2 and
3 re-publishes the same alerts with the same ``alert_id`` (downstream
de-duplicates on it); the state never counts an event twice. A save refused
because another worker moved the partition on makes this worker rejoin the
group and reload every state. Redis or Kafka outages pause the loop and are
retried with back-off.

On a topic of several partitions the same machinery runs twice: a route
stage sends each event to its model's partition of an internal topic, and a
detect stage merges those in event time before the pipeline (see
:mod:`.routing`), so the alerts do not depend on the partitioning. With
``--labels-topic``, the labels are routed the same way; on a topic of one
partition nothing is routed and the labels are read beside the events (see
:mod:`.labels_beside`).
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import faust
import msgspec
import numpy as np
import orjson
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from prometheus_client import Counter, Gauge, Histogram, start_http_server

from ..detectors.config import MonitorConfig
from ..errors import StateError
from .decode import dead_letter_shrinker, event_time
from .event_time import EventTimeMerger
from .kafka_reader import QUEUE_BY_SIZE, by_partition, librdkafka_log
from .kafka_security import kafka_security
from .labels import PLACE_SOURCE, LabelFeed, PerformanceWatch, from_labels, places
from .labels_beside import LabelsBeside
from .outage import outage
from .pipeline import PERFORMANCE_FIELD, SCHEMA_SAMPLE_LINES, Pipeline
from .publish import MAX_RECORD_BYTES, BatchPublisher, ensure_topics, topic_partitions
from .routing import by_model_topic, marks_of, merge_batch, resume_offset, route_batch
from .runtime import FAUST_WEB_PAGES_OFF, faust_datadir, single_threaded_blas
from .state_store import PartitionState, RedisStateStore, StaleState, retrying

__all__ = ["WorkerSettings", "Partition", "PartitionOutput", "build_app", "process_partition_batch"]

log = logging.getLogger("inferwatch.worker")


@dataclass(frozen=True)
class WorkerSettings:
    bootstrap_servers: str
    redis_url: str
    events_topic: str = "inference-events"
    alerts_topic: str = "inferwatch-alerts"
    dead_letter_topic: str = "inferwatch-dead-letters"
    outputs_topic: str = "inferwatch-guarded-outputs"
    app_id: str = "inferwatch"
    batch_size: int = 20000
    batch_seconds: float = 0.5
    web_port: int = 6066
    metrics_port: int | None = 9108
    bind_host: str = "127.0.0.1"  # where /metrics and Faust's web server listen (0.0.0.0 in a container)
    session_timeout: float = 10.0  # a killed worker's partitions move after this long
    on_lost_state: str = "fail"  # fail | resume-earliest | resume-latest: a state that cannot be trusted
    keyed_by_model: bool = False  # the producers key events by model: detection per partition, no routing
    model_partitions: int | None = None  # partitions of the by-model topic when it is made (default: the events')
    idle_seconds: float = 5.0  # a partition with nothing new this long stops holding the others' merge back
    instance_id: str | None = None  # static group membership: a restarted worker takes its partitions back at once
    alertmanager_url: str | None = None  # also post alerts to this Alertmanager (API v2)
    webhook_url: str | None = None  # also post alerts here as JSON
    labels_topic: str | None = None  # labels joined to their predictions: performance alerts (see .labels)


@dataclass(frozen=True)
class Stage:
    """What one consumer of the worker does (see :mod:`.routing`).

    ``direct``: the events topic's partitions through the pipeline, state per
    partition (a topic of one partition, or producers keyed by model);
    ``route`` and ``detect``: the two stages of any other partitioning.
    """

    kind: str  # direct | route | detect
    topic: str  # what it reads
    group: str
    namespace: str  # its states' Redis namespace
    by_model: str = ""  # the internal topic: written by route, read by detect
    partitions: int = 1  # the internal topic's partitions
    sources: int = 1  # the events topic's partitions
    events: str = ""  # the events topic (detect: where its events were read, for positions)
    source_base: int = 0  # route: the source number of its topic's partition 0 (the labels topic's follow the events')
    labels_from: int = 0  # detect: the sources at or above this are the labels topic's partitions (0: no labels)
    labels: str = ""  # direct: the labels topic, read beside the events (see .labels_beside)
    label_partitions: int = 0  # direct: its partitions


@dataclass
class Partition:
    """A partition this worker owns: its stored state, the ``next`` Redis held when loaded, the live pipeline."""

    topic: str
    number: int
    state: PartitionState
    loaded: int
    pipeline: Pipeline | None = None  # decoded once, kept between batches (its lookup tables are costly to rebuild)
    restarted: bool = False  # started over under --on-lost-state when it was assigned
    fields: dict[str, bytes] = field(default_factory=dict)  # stored fields, when the pipeline is built from them here
    unsaved: dict[str, bytes] = field(default_factory=dict)  # the fields changed since the last save
    merger: EventTimeMerger | None = None  # detect stage: the event-time merge of the source partitions
    quiet_since: float = field(default_factory=time.monotonic)  # route stage: when its last batch was read
    idle_said: bool = False  # route stage: its idle mark was sent since
    busy: int = 0  # its batches taken and not saved yet
    performance: PerformanceWatch | None = None  # detect stage with labels: the label join (the pipeline's, once built)
    labels_said: dict[str, int] = field(default_factory=dict)  # the join's counts the metrics have (from the load on)


@dataclass
class PartitionOutput:
    """What one partition batch publishes: (key, value) pairs per topic, in offset order."""

    alerts: list[tuple[bytes, bytes]] = field(default_factory=list)
    dead: list[bytes] = field(default_factory=list)
    decisions: list[tuple[bytes, bytes]] = field(default_factory=list)
    routed: list[tuple[bytes, bytes]] = field(default_factory=list)  # route stage: events keyed by model
    marks: list[tuple[int, bytes]] = field(default_factory=list)  # route stage: (internal partition, mark)
    late: int = 0  # detect stage: events released after the merge had moved past their time
    evidence: list[tuple[str, str, str, str, float]] = field(default_factory=list)  # (model, column, det, seg, ratio)
    per_model: dict[str, int] = field(default_factory=dict)  # events monitored, by model
    labels: dict[str, int] = field(default_factory=dict)  # detect stage with labels: the join's counts, after it
    state: PartitionState | None = None  # the state to save once these are published (a copy: the next batch
    fields: dict[str, bytes] = field(default_factory=dict)  # may be monitored meanwhile), and its changed fields


def process_partition_batch(config: MonitorConfig, part: Partition, offsets: list[int],
                            values: list[bytes], labels: dict | None = None,
                            stage: Stage | None = None) -> PartitionOutput:
    """The pipeline step over one partition's events; update ``part.state``; return what to publish, and
    a copy of the state to save after it.

    Events below ``part.state.next_offset`` were already counted and are
    skipped. No I/O: the caller publishes the output, then saves the state.
    ``labels``: the labels topic's records read beside them, (offsets,
    values, [those values read as labels]) per labels partition (``stage``
    says where the events were read).
    """
    if labels is not None:
        assert stage is not None
        out = _labels_beside(config, stage, part, offsets, values, labels)
    else:
        out = _monitor_batch(config, part, offsets, values)
    out.state = msgspec.structs.replace(part.state)
    out.fields, part.unsaved = part.unsaved, {}
    return out


def route_partition_batch(config: MonitorConfig, stage: Stage, part: Partition, offsets: list[int],
                          values: list[bytes]) -> PartitionOutput:
    """The route stage over one events-topic partition's batch: each event to its model's partition, then marks."""
    out = PartitionOutput()
    offsets, values = _unseen(part.state, offsets, values)
    if offsets:
        out.routed, out.marks = route_batch(part.state, part.number + stage.source_base, offsets, values,
                                            config.limits.max_model_name_bytes, stage.partitions)
    out.state = msgspec.structs.replace(part.state)
    return out


def detect_partition_batch(config: MonitorConfig, stage: Stage, part: Partition, offsets: list[int],
                           values: list[bytes]) -> PartitionOutput:
    """The detect stage over one by-model partition's batch: merge in event time, monitor what is released."""
    state = part.state
    if part.merger is None:
        try:
            part.merger = (EventTimeMerger.from_dict(msgspec.msgpack.decode(state.merger)) if state.merger
                           else EventTimeMerger(range(stage.sources)))
        except (msgspec.DecodeError, ValueError) as exc:
            raise StateError(f"{part.topic}:{part.number}: the stored event-time merge is unreadable ({exc})") from None
        for source in range(stage.sources):  # a labels topic given since the state was saved: its sources join
            part.merger.open(source)
    out = PartitionOutput(state=msgspec.structs.replace(state))
    if not offsets:
        return out
    late = part.merger.late
    released = merge_batch(part.merger, offsets, values)
    for at in released.unreadable:
        log.error("%s:%d offset %d is not an inferwatch record: skipped", part.topic, part.number, at)
    values, sources, offsets_read = released.values, released.sources, released.offsets
    if stage.labels_from and values:
        is_label = sources >= stage.labels_from
        if is_label.any():
            labels = [values[i] for i in np.flatnonzero(is_label).tolist()]
            watch = _label_watch(config, part)
            if watch.feed.append(labels):
                log.warning("%s:%d: unreadable labels among %d (no event_id, model, timestamp or label): counted",
                            part.topic, part.number, len(labels))
            keep = np.flatnonzero(~is_label)
            values, sources, offsets_read = [values[i] for i in keep.tolist()], sources[keep], offsets_read[keep]
            if part.pipeline is None:
                part.unsaved[PERFORMANCE_FIELD] = watch.to_bytes()
            elif not len(keep):  # labels alone: those the stream's clock has reached are joined now
                out = _labels_arrived(part, stage)
    if values:
        srcs, offs = sources.tolist(), offsets_read.tolist()
        if stage.labels_from:
            _label_watch(config, part).places = places(sources, offsets_read)

        def position(i: int, alert=None) -> dict:
            if alert is not None and stage.labels_from and from_labels(alert):  # a prediction of an earlier batch
                return _place(stage, i)
            return {"topic": stage.events, "partition": srcs[i], "offset": offs[i]}

        out = _run_pipeline(config, part, values, position)
    state.next_offset = max(state.next_offset, offsets[-1] + 1)  # records read again after a restart: no step back
    state.resume_offset = resume_offset(part.merger, state.next_offset)
    state.merger = msgspec.msgpack.encode(part.merger.resume())
    out.state = msgspec.structs.replace(state)
    out.fields, part.unsaved = part.unsaved, {}
    if stage.labels_from and (part.performance is not None or part.pipeline is not None):
        watch = _label_watch(config, part)
        out.labels = watch.progress()
        out.evidence += watch.evidence()
    out.late = part.merger.late - late
    if out.late:
        log.info("%s:%d: %d events came after the merge had moved past their time (late): monitored at the "
                 "merge's place", part.topic, part.number, out.late)
    return out


def _labels_beside(config: MonitorConfig, stage: Stage, part: Partition, offsets: list[int], values: list[bytes],
                   labels: dict) -> PartitionOutput:
    """A direct stage with a labels topic: the labels fed to the join, then the events monitored (or, with no
    event, the labels the stream's clock has reached joined)."""
    state, watch, fed = part.state, _label_watch(config, part), 0
    state.labels_next = dict(state.labels_next)  # not the dict of the copy the batch before may still be saving
    for k, (label_offsets, label_values, read) in sorted(labels.items()):
        start = state.labels_next.get(k, 0)
        if label_offsets and label_offsets[0] < start:  # read again: applied before
            keep = [i for i, off in enumerate(label_offsets) if off >= start]
            label_offsets = [label_offsets[i] for i in keep]
            read = [LabelFeed.from_lines([label_values[i] for i in keep])]
        if label_offsets:
            fed += len(label_offsets)
            state.labels_next[k] = label_offsets[-1] + 1
            if watch.feed.add(*read):
                log.warning("%s:%d: unreadable labels among %d (no event_id, model, timestamp or label): counted",
                            stage.labels, k, len(label_offsets))
    if fed and part.pipeline is None:
        part.unsaved[PERFORMANCE_FIELD] = watch.to_bytes()
    offsets, values = _unseen(state, offsets, values)
    if offsets:
        watch.places = places(np.full(len(offsets), part.number), np.asarray(offsets))

        def position(i: int, alert=None) -> dict:
            if alert is not None and from_labels(alert):  # a prediction, possibly of an earlier batch
                return _place(stage, i)
            return {"topic": part.topic, "partition": part.number, "offset": offsets[i]}

        out = _run_pipeline(config, part, values, position)
        state.next_offset = offsets[-1] + 1
    elif fed and part.pipeline is not None:
        out = _labels_arrived(part, stage)
    else:
        out = PartitionOutput()
    watch = _label_watch(config, part)  # the pipeline's, once built
    out.labels = watch.progress()
    out.evidence += watch.evidence()
    return out


def _unseen(state: PartitionState, offsets: list[int], values: list[bytes]) -> tuple[list[int], list[bytes]]:
    """The records at or past the stored next offset (the others were counted before a restart)."""
    if offsets and offsets[0] < state.next_offset:
        keep = [i for i, off in enumerate(offsets) if off >= state.next_offset]
        return [offsets[i] for i in keep], [values[i] for i in keep]
    return offsets, values


def _monitor_batch(config: MonitorConfig, part: Partition, offsets: list[int], values: list[bytes]) -> PartitionOutput:
    offsets, values = _unseen(part.state, offsets, values)
    if not offsets:
        return PartitionOutput()
    where = {"topic": part.topic, "partition": part.number}
    out = _run_pipeline(config, part, values, lambda i, alert=None: {**where, "offset": offsets[i]})
    part.state.next_offset = offsets[-1] + 1
    return out


def _run_pipeline(config: MonitorConfig, part: Partition, values: list[bytes], position) -> PartitionOutput:
    """The pipeline step over ``values``; ``position(i, alert=None)`` says where the i-th was read (alerts, dead
    letters)."""
    out = PartitionOutput()
    state = part.state
    if part.pipeline is None:
        part.pipeline = (Pipeline.from_parts(state.pipeline, part.fields, config) if state.pipeline
                         else Pipeline.build(config, values[:SCHEMA_SAMPLE_LINES]))
        part.fields = {}  # read into the pipeline: no need to keep them
        if part.performance is not None:  # labels came before the first event (or since the state was read)
            part.pipeline.performance = part.performance
    pipe = part.pipeline
    result = pipe.step(values, decisions=config.has_rules(), messages=True)
    cap = config.limits.dead_letter_bytes
    out.dead = [d.encoded(position(d.index), cap) for d in result.dead]
    out.alerts = [(a.model.encode(), orjson.dumps(a.to_record(position(i, a)))) for i, a in result.alerts]
    out.decisions = [(d.model.encode(), _JSON.encode(d)) for _, d in result.decisions]
    state.pipeline, changed = pipe.to_parts()
    part.unsaved.update(changed)
    state.events += result.events
    state.dead_letters += len(out.dead)
    # the stepped models' evidence, read here, in the thread that steps the monitors (tens of us a model)
    out.evidence = [(m, *e) for m in sorted(result.models) if m in pipe.monitor.models
                    for e in pipe.monitor.models[m].evidence()]
    out.per_model = result.per_model
    return out


_JSON = msgspec.json.Encoder()


def _labels_arrived(part: Partition, stage: Stage) -> PartitionOutput:
    """Detect stage, a batch of labels and no event: the joins they make, and the state that keeps them."""
    pipe = part.pipeline
    assert pipe is not None
    result = pipe.labels_arrived()
    out = PartitionOutput()
    out.alerts = [(a.model.encode(), orjson.dumps(a.to_record(_place(stage, i)))) for i, a in result.alerts]
    part.state.pipeline, changed = pipe.to_parts()
    part.unsaved.update(changed)
    return out


def _place(stage: Stage, place: int) -> dict:
    """Where a prediction waiting for its label was read (its place: see PLACE_SOURCE)."""
    source, offset = divmod(int(place), PLACE_SOURCE)
    return {"topic": stage.events, "partition": source, "offset": offset}


def _label_watch(config: MonitorConfig, part: Partition) -> PerformanceWatch:
    """The detect partition's label join: its pipeline's, else the one stored, else a new one."""
    if part.pipeline is not None and part.pipeline.performance is not None:
        return part.pipeline.performance
    if part.performance is None:
        raw = part.fields.get(PERFORMANCE_FIELD)
        part.performance = (PerformanceWatch.from_bytes(raw, config) if raw
                            else PerformanceWatch(config, LabelFeed.empty()))
        if part.pipeline is not None:
            part.pipeline.performance = part.performance
    return part.performance




@dataclass(frozen=True)
class LogView:
    """What Kafka says of a partition when it is assigned: its first and next offsets, the group's committed one."""

    low: int
    high: int
    committed: int  # -1: none


def lost_state(state: PartitionState, loaded: int, seen: LogView | None) -> str | None:
    """Why a stored state cannot be trusted against the log, or None when it can.

    The group's committed offset is a witness Redis does not hold: the worker
    commits an offset only after the state that reached it was saved, so a
    state behind it was lost or rolled back. A state ahead of the log's end
    belongs to another log (the topic was deleted and created again).

    >>> lost_state(PartitionState(), -1, LogView(0, 5000, 4000))
    'no state in Redis, but the group had committed offset 4000: the state was lost (Redis restarted empty?)'
    >>> lost_state(PartitionState(next_offset=9000), 9000, LogView(0, 4000, -1))
    'the state is at offset 9000, past the end of the log (4000): the topic was re-created or truncated'
    >>> lost_state(PartitionState(next_offset=3000), 3000, LogView(0, 4000, 3000)) is None
    True
    """
    if seen is None:
        return None
    if loaded < 0 and seen.committed > seen.low:
        return (f"no state in Redis, but the group had committed offset {seen.committed}: "
                "the state was lost (Redis restarted empty?)")
    if loaded >= 0 and seen.committed > state.next_offset:
        return (f"the state is at offset {state.next_offset}, behind the group's committed offset {seen.committed}: "
                "Redis lost writes (restored from an older copy?)")
    if state.next_offset > seen.high:
        return (f"the state is at offset {state.next_offset}, past the end of the log ({seen.high}): "
                "the topic was re-created or truncated")
    return None


class WorkerMetrics:
    """Prometheus series of the worker (served on ``/metrics``)."""

    def __init__(self) -> None:
        self.events = Counter("inferwatch_events", "Valid events monitored", ["partition"])
        self.model_events = Counter("inferwatch_model_events", "Valid events monitored, by model (at most "
                                    "max_models series)", ["model"])
        self.dead = Counter("inferwatch_dead_letters", "Invalid events sent to the dead-letter topic", ["partition"])
        # segment: "tag=value", or "" for the whole model (at most max_segment_values values a tag)
        self.alerts = Counter("inferwatch_alerts", "Alerts published", ["model", "segment", "status"])
        self.batch = Histogram("inferwatch_batch_seconds", "Time to process one partition batch",
                               buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.lag = Gauge("inferwatch_consumer_lag", "Events in the partition not yet monitored", ["topic", "partition"])
        self.assigned = Gauge("inferwatch_assigned_partitions", "Partitions this worker owns")
        self.refused = Counter("inferwatch_refused_records", "Records Kafka refused for good (too large), dropped")
        self.late = Counter("inferwatch_late_events", "Events that reached the event-time merge after it had moved "
                            "past their time: monitored at the merge's place, not their own")
        self.evidence = Gauge("inferwatch_evidence_ratio", "Each detector's highest evidence over its threshold "
                              "(an alert fires at 1), after each batch of the model; at most max_models x columns x "
                              "detectors x segment values", ["model", "feature", "detector", "segment"])
        self.open = Gauge("inferwatch_open_alerts", "1 per open alert episode (model, column, the detector that "
                          "opened it, segment); at most max_models x columns x detectors x segment values",
                          ["model", "feature", "detector", "segment"])
        self.labels = Counter("inferwatch_labels", "Labels and predictions through the label join, by outcome: "
                              "joined, expired (a prediction unlabelled within max_delay), orphaned (a label whose "
                              "prediction never came), unreadable", ["outcome"])
        self.waiting = Gauge("inferwatch_labels_waiting", "Predictions waiting for their label", ["partition"])
        self.dropped = Counter("inferwatch_notifications_dropped", "Alerts not posted to Alertmanager or the "
                               "webhook because their receivers were too far behind (they are on the alerts topic)")

    def observe(self, state, before, alerts: list[bytes], seconds: float,
                evidence: list[tuple[str, str, str, str, float]] = (), per_model: dict[str, int] | None = None) -> None:
        for model, n in (per_model or {}).items():
            self.model_events.labels(model).inc(n)
        for model, feature, detector, segment, ratio in evidence:
            self.evidence.labels(model, feature, detector, segment).set(round(ratio, 4))
        self.events.labels("all").inc(state.events - before[0])
        self.dead.labels("all").inc(state.dead_letters - before[1])
        for _, raw in alerts:
            alert = orjson.loads(raw)
            if alert["kind"] == "incident":  # a record about alerts, not an alert of a column
                continue
            where = ",".join(f"{k}={v}" for k, v in sorted((alert.get("segment") or {}).items()))
            self.alerts.labels(alert["model"], where, alert["status"]).inc()
            self.opened(alert["model"], alert.get("feature") or "", alert["detector"], where,
                        alert["status"] == "firing")
        self.batch.observe(seconds)

    def joined(self, partition: str, counts: dict[str, int], before: dict[str, int]) -> None:
        """The label join's progress in one batch (counts are totals kept in the state)."""
        for outcome in ("joined", "expired", "orphaned", "unreadable"):
            self.labels.labels(outcome).inc(max(counts[outcome] - before.get(outcome, 0), 0))
        self.waiting.labels(partition).set(counts["waiting"])

    def opened(self, model: str, feature: str, detector: str, segment: str, is_open: bool) -> None:
        """The open-alerts gauge: a series per open episode, gone when it resolves."""
        if is_open:
            self.open.labels(model, feature, detector, segment).set(1)
        else:
            try:
                self.open.remove(model, feature, detector, segment)
            except KeyError:
                pass

    def loaded(self, pipeline) -> None:
        """A partition's episodes still open when its state was loaded (a restart keeps the gauge right)."""
        if pipeline is None:
            return
        for name, model in pipeline.monitor.models.items():
            for column, detector, *where in model.policy.open_alerts():
                self.opened(name, column, detector, where[0] if where else "", True)


STALL_SECONDS = 60.0  # events waiting and nothing saved for this long: /healthz says "stalled"


@dataclass
class Health:
    """What ``GET /healthz`` answers: 200 while the worker works, 503 once it cannot (and says why).

    >>> h = Health(started=0.0)
    >>> h.report(now=10.0)
    (200, {'status': 'ok', 'partitions': 0, 'lag': 0, 'seconds_since_progress': 10.0})
    >>> h.lag = 5
    >>> h.report(now=100.0)[1]["status"], h.failed("StateError: unreadable") or h.report(now=101.0)[1]["status"]
    ('stalled', 'failed')
    """

    started: float
    progress: float | None = None  # monotonic time of the last saved batch
    partitions: int = 0
    lag: int = 0
    kafka_down: bool = False
    failure: str | None = None

    def failed(self, why: str) -> None:
        self.failure = why

    def report(self, now: float) -> tuple[int, dict]:
        since = round(now - (self.progress if self.progress is not None else self.started), 3)
        body: dict = {"status": "ok", "partitions": self.partitions, "lag": self.lag, "seconds_since_progress": since}
        if self.failure is not None:
            body.update(status="failed", error=self.failure)
        elif self.kafka_down:
            body["status"] = "kafka unavailable"
        elif self.lag > 0 and since > STALL_SECONDS:
            body["status"] = "stalled"
        return (200 if body["status"] == "ok" else 503), body


FETCH_SLICE = 0.05  # seconds per librdkafka consume call: it returns only when full or timed out
COMMIT_EVERY = 1.0  # seconds between offset hints: the lost-state witness lags the state by about this much
BACKLOG_SECONDS = 4.5  # how much longer than batch_seconds a batch may fill while the fetches come back full
CONSUME_RECORDS = 5_000  # per consume call: it holds the GIL while it builds them, and the monitoring thread waits


class Resync(Exception):
    """Another worker saved a partition we hold: start over from the states in Redis."""


class PartitionConsumer:
    """Reads the events topic in batches and runs each partition's batch through the core, state in Redis.

    Three stages overlap: a thread fetches records (librdkafka; its group
    callbacks run there too), a thread decodes and monitors a batch (polars
    and the compiled kernels release the GIL), and the event loop publishes
    and saves. A rebalance first lets every fetched batch finish and save,
    then loads the new partitions' states and starts them at their stored
    next offsets.
    """

    def __init__(self, config: MonitorConfig, settings: WorkerSettings, metrics: WorkerMetrics,
                 health: Health | None = None, stage: Stage | None = None, notifier=None) -> None:
        self.config, self.settings, self.metrics = config, settings, metrics
        self.stage = stage or Stage("direct", settings.events_topic, settings.app_id, settings.app_id)
        self.health = health or Health(started=time.monotonic())
        self.store = RedisStateStore(settings.redis_url, namespace=self.stage.namespace)
        self.publisher = BatchPublisher(settings.bootstrap_servers)
        self.owned: dict = {}  # (topic, partition) -> Partition
        self.generation = 0  # bumped by every assignment: a batch being gathered across one is dropped
        self.consumer: Consumer | None = None
        self.fetcher = ThreadPoolExecutor(1, thread_name_prefix="kafka-fetch")
        self.loop: asyncio.AbstractEventLoop | None = None
        self.queue: asyncio.Queue = asyncio.Queue(maxsize=1)
        self.processing: asyncio.Task | None = None
        self.committed_at = 0.0
        self.highwater: dict = {}  # (topic, partition) -> end offset, noted by the fetch thread
        self.kafka = outage("kafka")
        self.notifier = notifier  # streams.notify.Notifier, shared by the worker's stages
        self.beside: LabelsBeside | None = None  # a direct stage's labels topic (see .labels_beside)

    async def run(self) -> None:
        s = self.settings
        self.loop = asyncio.get_running_loop()
        missing = await retrying("redis", self.store.persistence)
        if missing and self.stage.kind != "route":  # said once per worker
            log.warning("redis keeps no persistence (%s): a restart loses every state, and the worker will stop "
                        "on it (--on-lost-state)", missing)
        topics = [s.alerts_topic, s.dead_letter_topic] + ([s.outputs_topic] if self.config.has_rules() else [])
        sizes = {s.dead_letter_topic: {"max.message.bytes": str(self.config.limits.dead_letter_bytes)}}
        await retrying("kafka", lambda: asyncio.to_thread(ensure_topics, s.bootstrap_servers, topics, 1, sizes))
        try:
            with single_threaded_blas():
                while True:
                    try:
                        await self._consume()
                    except Resync as exc:
                        log.warning("%s: rejoining and reloading every partition's state", exc)
        finally:
            await self.publisher.stop()
            await self.store.close()
            self.fetcher.shutdown(wait=False)

    async def _fetch(self, call, *args):
        return await self.loop.run_in_executor(self.fetcher, call, *args)

    async def _consume(self) -> None:
        s = self.settings
        self.owned.clear()
        self.queue = asyncio.Queue(maxsize=1)
        common = {
            "bootstrap.servers": s.bootstrap_servers, "max.partition.fetch.bytes": 8 << 20, "fetch.max.bytes": 32 << 20,
            **QUEUE_BY_SIZE, "fetch.queue.backoff.ms": 20,  # and refilled soon after it drains
            "error_cb": self._kafka_error, "logger": librdkafka_log, "reconnect.backoff.max.ms": 1000,
            **kafka_security().librdkafka(),
        }
        self.consumer = Consumer({
            **common, "group.id": self.stage.group, "enable.auto.commit": False,
            "enable.auto.offset.store": False, "auto.offset.reset": "earliest",
            "session.timeout.ms": int(s.session_timeout * 1000),
            "heartbeat.interval.ms": int(min(3.0, s.session_timeout / 3) * 1000),
            "stats_cb": self._kafka_stats, "statistics.interval.ms": 2000,  # tells when a broker is back
            **({"group.instance.id": s.instance_id} if s.instance_id else {}),
        })
        if self.stage.labels:  # assigned with the events partition (no group of its own: nothing is committed)
            self.beside = LabelsBeside(self.stage.labels, self.stage.label_partitions,
                                       {**common, "group.id": f"{self.stage.group}-labels-beside"})
        self.consumer.subscribe([self.stage.topic], on_assign=self._on_assign, on_revoke=self._on_revoke,
                                on_lost=self._on_revoke)
        self.processing = asyncio.create_task(self._process_batches())
        try:
            while True:
                if self.processing.done():  # a failure stops the worker at once, not at the next message
                    self.processing.result()
                batch = await self.take()
                if self.stage.kind == "route":  # even while others have a backlog: they must not wait for it
                    await self._idle_marks(skip=batch.keys())
                if batch:
                    put = asyncio.ensure_future(self.queue.put(batch))
                    await asyncio.wait([put, self.processing], return_when=asyncio.FIRST_COMPLETED)
                    if self.processing.done():
                        put.cancel()
                        self.processing.result()  # raises what stopped it
                await self.commit_hint()
        finally:
            self.processing.cancel()
            await self._fetch(self.consumer.close)  # leaves the group: the revoke callback sees nothing left to drain
            if self.beside is not None:
                await self._fetch(self.beside.close)

    def _kafka_error(self, error) -> None:
        """librdkafka reconnects by itself: say once that Kafka is away (a fatal error is logged as one).

        "All brokers are down" from the consumer is only a suspicion until its
        next statistics (2 s) find no broker up: librdkafka also reports it
        while it swaps a bootstrap connection for the broker's own, seconds
        after an outage ended ("0/2 brokers are down").
        """
        if error.fatal():
            log.error("kafka: fatal error %s", error)
        elif error.code() == KafkaError._ALL_BROKERS_DOWN:
            self.kafka.suspect()
        else:
            self.kafka.lost(error)

    def _kafka_stats(self, stats: str) -> None:
        """In the fetch thread, every 2 s: whether a broker answers (says an outage's end even with nothing to read,
        and confirms a loss reported just after an outage ended)."""
        brokers = orjson.loads(stats).get("brokers", {}).values()
        if any(b.get("state") == "UP" and b.get("nodeid", -1) >= 0 for b in brokers):
            self.kafka.back()
        elif self.kafka.down:
            self.kafka.lost("no broker answers")

    async def take(self) -> dict:
        """(offsets, values) per partition: about ``batch_size`` each, at most ``batch_seconds`` after the first.

        A partition that feeds many models asks for more (:meth:`Pipeline.step_lines`); while
        the fetches come back full (a backlog), the batch fills for up to ``BACKLOG_SECONDS`` more.
        """
        least = self.settings.batch_size
        size = sum(p.pipeline.step_lines(least) if p.pipeline else least for p in self.owned.values()) or least
        got: dict = {}
        n, deadline, latest, behind = 0, None, 0.0, False
        while n < size:
            now = self.loop.time()
            if deadline is not None and now >= deadline and (not behind or now >= latest):
                break
            wait = FETCH_SLICE if deadline is None or behind else min(FETCH_SLICE, deadline - now)
            asked = min(size - n, CONSUME_RECORDS)
            more = await self._fetch(self._records, size - n, wait)
            if more is None:
                return {}  # the partitions were reassigned meanwhile: each starts again at its stored offset
            if not more:
                if deadline is None:
                    return got
                behind = False
                continue
            fetched = 0
            for tp, group in more.items():  # (offsets, values), or, of labels read beside, (offsets, values, feeds)
                have = got.setdefault(tp, tuple([] for _ in group))
                for mine, more_of in zip(have, group):
                    mine.extend(more_of)
                fetched += len(group[0]) if tp[0] == self.stage.topic else 0  # labels read beside: not counted
            n += fetched
            # a full fetch means a backlog: the batch may then fill past batch_seconds (up to BACKLOG_SECONDS),
            # since alerts wait on the backlog anyway and a full batch costs less per event
            behind = fetched >= asked
            if deadline is None:
                deadline = self.loop.time() + self.settings.batch_seconds
                latest = deadline + BACKLOG_SECONDS
        return got

    def _records(self, most: int, timeout: float) -> dict | None:
        """In the fetch thread: up to ``most`` records, grouped by partition as (offsets, values).

        None when a rebalance ran inside this call (its callbacks run here):
        the records may mix both assignments, so they are dropped and every
        owned partition is sought back to its stored next offset.
        """
        generation = self.generation
        got = self.consumer.consume(num_messages=min(most, CONSUME_RECORDS), timeout=timeout)
        if self.generation != generation:
            for (topic, number), part in list(self.owned.items()):
                self.consumer.seek(TopicPartition(topic, number, part.state.start()))
            return None  # (the labels read beside were placed by the assignment, from the stored states)
        grouped, _ = by_partition(got)  # (transient errors: librdkafka carries on by itself)
        read = sum(len(offsets) for offsets, _ in grouped.values())
        beside = self.beside.take(read, self._clock(grouped)) if self.beside is not None else {}
        topic = self.stage.topic
        for number in grouped:
            self._note_highwater(TopicPartition(topic, number))
        return {(topic, number): group for number, group in grouped.items()} | {
            (self.beside.topic, k): group for k, group in beside.items()}

    def _clock(self, fetched: dict | None = None) -> float:
        """In the fetch thread: the events' time as of the last batch monitored (of the one partition owned),
        or as far as the last event just ``fetched`` says, when it says more: the labels of the batch being
        fetched come with it (the last batch's are not left for a fetch after it)."""
        pipelines = [p.pipeline for p in list(self.owned.values()) if p.pipeline is not None]
        clock = pipelines[0].last_time if pipelines else -math.inf
        for _, values in (fetched or {}).values():
            if values:
                last = event_time(values[-1])
                clock = max(clock, last) if last == last else clock
        return clock

    def _note_highwater(self, tp: TopicPartition) -> None:
        """In the fetch thread, for the lag metric: the partition's end offset as last fetched.

        Only the fetch thread calls the consumer: a call from the event loop
        waits for the fetch thread's ``consume`` to return, and for ever when
        that ``consume`` is running a revoke callback that waits for the loop.
        """
        try:
            self.highwater[(tp.topic, tp.partition)] = self.consumer.get_watermark_offsets(tp, cached=True)[1]
        except KafkaException:
            pass

    def _on_revoke(self, consumer, partitions) -> None:
        """In the fetch thread: let every fetched batch finish and save, commit their offsets, forget them.

        The committed offsets are the witness a lost state is found by
        (:func:`lost_state`), so they are written whenever partitions leave,
        not only every ``COMMIT_EVERY`` seconds.
        """
        saved = asyncio.run_coroutine_threadsafe(self._revoked(partitions), self.loop).result()
        if self.beside is not None and not self.owned:
            self.beside.unassign()
        if saved:
            try:
                consumer.commit(offsets=saved, asynchronous=False)
            except KafkaException as exc:
                log.info("offset hint not committed on revoke (%s); the state in Redis is unaffected", exc)

    def _on_assign(self, consumer, partitions) -> None:
        """In the fetch thread: load the partitions' states, check them against the log, start each where it says."""
        logs = {}
        try:
            committed = {(c.topic, c.partition): c.offset for c in consumer.committed(partitions, timeout=30)}
            for tp in partitions:
                low, high = consumer.get_watermark_offsets(tp, timeout=30)
                logs[(tp.topic, tp.partition)] = LogView(low, high, committed.get((tp.topic, tp.partition), -1))
                self.highwater[(tp.topic, tp.partition)] = high  # its end, before any fetch of it
        except KafkaException as exc:  # the checks need the broker; without it they are skipped, loudly
            log.warning("kafka: cannot read the log's offsets to check the stored states (%s)", exc)
        starts = asyncio.run_coroutine_threadsafe(self._assigned(partitions, logs), self.loop).result()
        placed = [TopicPartition(tp.topic, tp.partition, offset) for tp, offset in zip(partitions, starts)]
        consumer.assign(placed)
        if self.beside is not None:
            self._assign_beside()
        fresh = [tp for tp in placed if getattr(self.owned.get((tp.topic, tp.partition)), "restarted", False)]
        if fresh:  # a partition started over: its new start is the witness now, not the old committed offset
            try:
                consumer.commit(offsets=fresh, asynchronous=False)
            except KafkaException as exc:
                log.warning("the new start of %s is not committed yet (%s)", fresh, exc)

    def _assign_beside(self) -> None:
        """In the fetch thread: the labels topic from the stored offsets of the events partition owned, if any."""
        assert self.beside is not None
        parts = list(self.owned.values())
        if len(parts) > 1 or (parts and parts[0].number != 0):  # the topic grew: its events must be merged now
            raise StateError(f"{self.stage.topic} has more than one partition now: restart the worker, which then "
                             "routes its events and labels by model (the labels read beside one partition are "
                             "that partition's alone)")
        if parts:
            self.beside.assign(parts[0].state.labels_next)
        else:
            self.beside.unassign()

    async def _revoked(self, partitions) -> list:
        await self.drained()
        saved = []
        for tp in partitions:
            part = self.owned.pop((tp.topic, tp.partition), None)
            if part is not None and part.loaded >= 0:
                saved.append(TopicPartition(part.topic, part.number, part.loaded))
        self.metrics.assigned.set(len(self.owned))
        return saved

    async def _assigned(self, partitions, logs: dict) -> list[int]:
        self.generation += 1
        starts = []
        for tp in partitions:
            part = await self.load((tp.topic, tp.partition), logs.get((tp.topic, tp.partition)))
            starts.append(part.state.start())
        self.metrics.assigned.set(len(self.owned))
        return starts

    async def drained(self) -> None:
        """Wait until every fetched batch is monitored, published and saved."""
        if self.processing is None or self.processing.done():
            return
        join = asyncio.ensure_future(self.queue.join())
        await asyncio.wait([join, self.processing], return_when=asyncio.FIRST_COMPLETED)
        join.cancel()

    async def load(self, tp, seen: LogView | None = None) -> Partition:
        """The partition's state, checked: a state that cannot be trusted is handled by ``--on-lost-state``."""
        topic, number = tp
        key = self.store.key(topic, number)
        pipeline, problem, performance = None, None, None
        try:
            state, loaded, fields = await retrying("redis", lambda: self.store.load(topic, number))
            if state.pipeline:
                pipeline = Pipeline.from_parts(state.pipeline, fields, self.config)
            elif PERFORMANCE_FIELD in fields:  # labels came, no event yet
                performance = PerformanceWatch.from_bytes(fields[PERFORMANCE_FIELD], self.config)
            problem = lost_state(state, loaded, seen)
        except StateError as exc:
            state, loaded, problem = PartitionState(), -1, str(exc)
        if problem is not None:
            state, loaded, pipeline = await self._start_over(tp, key, problem, seen)
            performance = None
        part = self.owned[tp] = Partition(topic, number, state, loaded, pipeline, restarted=problem is not None,
                                          performance=performance)
        watch = pipeline.performance if pipeline is not None and pipeline.performance is not None else performance
        part.labels_said = watch.progress() if watch is not None else {}
        self.metrics.loaded(pipeline)
        return part

    async def _start_over(self, tp, key: str, problem: str, seen: LogView | None) -> tuple[PartitionState, int, None]:
        """Apply ``--on-lost-state`` to a state that cannot be trusted: stop naming it, or start the partition over."""
        policy = self.settings.on_lost_state
        if policy == "fail":
            raise StateError(f"{key}: {problem}; to start this partition over, run with "
                             f"--on-lost-state resume-earliest or resume-latest")
        if seen is None:
            raise StateError(f"{key}: {problem}; the log's offsets could not be read, so --on-lost-state {policy} "
                             "cannot place the new start: try again when Kafka answers")
        start = seen.low if policy == "resume-earliest" else seen.high
        log.error("%s: %s; starting over from offset %d (--on-lost-state %s)", key, problem, start, policy)
        fresh = PartitionState(next_offset=start)
        await retrying("redis", lambda: self.store.reset(*tp))
        await retrying("redis", lambda: self.store.save(tp[0], tp[1], fresh, -1))  # the decision is durable
        return fresh, start, None

    async def _process_batches(self) -> None:
        """Monitor each fetched batch in a thread while the batch before it is published and saved.

        A partition's batches are saved in order (each save names the
        ``next`` the one before wrote), and a batch is saved only after what it
        produced was acknowledged; a batch counts as done (``queue.task_done``)
        once it is saved, so a rebalance waits for it.
        """
        behind: list | None = None  # the finishing saves of the batch before
        while True:
            if behind is not None and self.queue.empty():  # nothing to overlap with: finish it now
                await self._settle(behind)
                behind = None
                continue
            batch = await self.queue.get()
            try:
                done = []
                labels = self._labels_of(batch)
                for tp in sorted(batch, key=lambda t: t[1]):
                    part = self.owned.get(tp)
                    if part is None:  # revoked since it was read: the new owner counts it
                        continue
                    offsets, values = batch[tp]
                    started = time.perf_counter()
                    before = (part.state.events, part.state.dead_letters)
                    part.quiet_since, part.idle_said = time.monotonic(), False
                    part.busy += 1
                    out = await asyncio.to_thread(self._process, part, offsets, values, labels)
                    done.append((tp, part, out, before, started))
            except BaseException:
                try:
                    if behind is not None:  # no save is left running behind a failure
                        await asyncio.gather(*behind, return_exceptions=True)
                finally:
                    if behind is not None:
                        self.queue.task_done()
                    self.queue.task_done()
                raise
            if behind is not None:
                try:
                    await self._settle(behind)  # the batch before is saved: this one's saves may follow it
                except BaseException:
                    self.queue.task_done()  # this batch is dropped: the state is reloaded from Redis
                    raise
            behind = [asyncio.ensure_future(self.finish(tp, part, out, before, started))
                      for tp, part, out, before, started in done]

    async def _settle(self, finishing: list) -> None:
        """Wait for every save of one batch (none is left running behind a resync), then mark it done."""
        try:
            for outcome in await asyncio.gather(*finishing, return_exceptions=True):
                if isinstance(outcome, BaseException):
                    raise outcome
        finally:
            self.queue.task_done()

    def _labels_of(self, batch: dict) -> dict | None:
        """A direct stage with labels: the labels read beside the events, taken out of ``batch``, per labels
        partition; an events partition owned that has none in it gets an empty part (the labels still count)."""
        if self.beside is None:
            return None
        labels = {tp[1]: batch.pop(tp) for tp in [tp for tp in batch if tp[0] == self.beside.topic]}
        if labels:
            for tp in self.owned:
                batch.setdefault(tp, ([], []))
        return labels

    def _process(self, part: Partition, offsets: list[int], values: list[bytes],
                 labels: dict | None = None) -> PartitionOutput:
        """In a thread: the stage's work on one partition batch (no I/O)."""
        kind = self.stage.kind
        if kind == "route":
            return route_partition_batch(self.config, self.stage, part, offsets, values)
        if kind == "detect":
            return detect_partition_batch(self.config, self.stage, part, offsets, values)
        return process_partition_batch(self.config, part, offsets, values, labels, self.stage)

    async def _idle_marks(self, skip=()) -> None:
        """Route stage: a partition read to its end, with nothing new for ``idle_seconds`` and all of it saved,
        tells every model's stage so once, and stops holding their merge back until it sends again. A partition
        whose end is not known yet (the broker did not answer on assignment, nothing fetched) is not idle."""
        now, stage = time.monotonic(), self.stage
        for tp, part in list(self.owned.items()):
            if part.idle_said or now - part.quiet_since < self.settings.idle_seconds or tp in skip:
                continue
            if part.busy or tp not in self.highwater or self.highwater[tp] > part.state.next_offset:
                if now - part.quiet_since > 10 * self.settings.idle_seconds:
                    log.debug("%s:%d quiet for %.0f s but not idle: %d batches unsaved, end %s, next %d", tp[0],
                              tp[1], now - part.quiet_since, part.busy, self.highwater.get(tp), part.state.next_offset)
                continue  # a batch of it is still being saved, or it has more to read
            marks = marks_of(part.state, part.number + stage.source_base, stage.partitions, idle=True)
            part.idle_said = True  # before the wait: a batch read meanwhile says it is not idle any more
            await self.publisher.deliver([(stage.by_model, q, [(None, mark)]) for q, mark in marks])

    async def finish(self, tp, part: Partition, out: PartitionOutput, before, started: float) -> None:
        """Publish one partition batch's output, wait for the acks, then save its state and offset."""
        s = self.settings
        sends = [(s.outputs_topic, None, out.decisions), (s.alerts_topic, None, out.alerts),
                 (s.dead_letter_topic, None, [(None, v) for v in out.dead])]
        if self.stage.kind == "route":  # the events first, then the marks that say they were all sent
            sends = [(self.stage.by_model, None, out.routed)] + [(self.stage.by_model, q, [(None, mark)])
                                                                 for q, mark in out.marks]
        refused = await self.publisher.deliver(sends, shrink=dead_letter_shrinker(s.dead_letter_topic))
        if refused:
            self.metrics.refused.inc(refused)
        if out.late:
            self.metrics.late.inc(out.late)
        if self.notifier is not None and out.alerts:  # after the alerts topic has them: never before, never waited on
            dropped = self.notifier.dropped
            self.notifier.offer([orjson.loads(raw) for _, raw in out.alerts])
            self.metrics.dropped.inc(self.notifier.dropped - dropped)
        state = out.state
        assert state is not None  # process_partition_batch always gives the copy to save
        try:
            await retrying("redis", lambda: self.store.save(part.topic, part.number, state, part.loaded, out.fields))
        except StaleState as exc:
            raise Resync(str(exc)) from None
        part.loaded = state.next_offset
        part.busy -= 1
        if self.stage.kind != "route":  # routed events are counted once, where they are monitored
            self.metrics.observe(state, before, out.alerts, time.perf_counter() - started, out.evidence,
                                 out.per_model)
        if out.labels:
            self.metrics.joined(f"{part.topic}:{part.number}", out.labels, part.labels_said)
            part.labels_said = out.labels
        highwater = self.highwater.get(tp, -1)
        if highwater >= 0:
            self.metrics.lag.labels(part.topic, str(part.number)).set(max(highwater - state.next_offset, 0))
        self._note_health()

    def _note_health(self) -> None:
        h = self.health
        h.progress = time.monotonic()
        h.partitions = len(self.owned)
        h.lag = self.lag()
        h.kafka_down = self.kafka.down

    def lag(self) -> int:
        """Events in the owned partitions not yet saved (as of the last fetch)."""
        return sum(max(self.highwater.get(tp, -1) - p.loaded, 0) for tp, p in list(self.owned.items()))

    async def commit_hint(self) -> None:
        """Every few seconds, commit the saved offsets to Kafka too (a starting hint for tools; Redis decides)."""
        now = time.monotonic()
        if now - self.committed_at < COMMIT_EVERY or not self.owned:
            return
        self.committed_at = now
        offsets = [TopicPartition(p.topic, p.number, p.loaded) for p in self.owned.values() if p.loaded >= 0]
        try:
            if offsets:
                await self._fetch(lambda: self.consumer.commit(offsets=offsets, asynchronous=True))
        except KafkaException as exc:
            log.info("offset hint not committed (%s); the state in Redis is unaffected", exc)


class _NoFaustKafka(faust.App.BootStrategy):
    enable_kafka = False  # Faust's consumer and producer stay off: the events never go through its stream


class WorkerApp(faust.App):
    BootStrategy = _NoFaustKafka


def build_app(config: MonitorConfig, settings: WorkerSettings) -> faust.App:
    app = WorkerApp(settings.app_id, broker=f"kafka://{settings.bootstrap_servers}", store="memory://",
                    datadir=faust_datadir(settings.app_id),
                    web_port=settings.web_port, web_host=settings.bind_host, **FAUST_WEB_PAGES_OFF)
    metrics = WorkerMetrics()
    health = Health(started=time.monotonic())

    @app.page("/healthz")
    async def healthz(web, request):
        consumer = getattr(app, "consumer_view", None)
        if consumer is not None:
            health.kafka_down = consumer.kafka_down
            health.partitions = len(consumer.owned)
            health.lag = consumer.lag()
        code, body = health.report(time.monotonic())
        return web.json(body, status=code)

    notifier = None
    if settings.alertmanager_url or settings.webhook_url:
        from .notify import AlertmanagerSink, Notifier, WebhookSink

        notifier = Notifier(([AlertmanagerSink(settings.alertmanager_url)] if settings.alertmanager_url else [])
                            + ([WebhookSink(settings.webhook_url)] if settings.webhook_url else []))

    @app.task
    async def monitor() -> None:
        try:
            stages = await plan_stages(settings)
            if len(stages) > 1:
                log.info("%s has %d partitions: events routed by model through %s (%d partitions)",
                         settings.events_topic, stages[0].sources, stages[0].by_model, stages[0].partitions)
            consumers = [PartitionConsumer(config, settings, metrics, health, stage, notifier) for stage in stages]
            app.consumer_view = ConsumerView(consumers)  # type: ignore[attr-defined]
            await _all_or_none([c.run() for c in consumers])
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # stop the whole worker, now and visibly: a supervisor restarts it
            health.failed(f"{type(exc).__name__}: {exc}")
            app.failure = exc  # type: ignore[attr-defined]
            log.error("the worker stops: %s: %s", type(exc).__name__, exc)
            os.kill(os.getpid(), signal.SIGTERM)  # Faust's own graceful stop

    return app


async def plan_stages(settings: WorkerSettings) -> list[Stage]:
    """The worker's consumers: one direct stage for a topic of one partition (or events keyed by model),
    else the route and detect stages over the by-model topic (made here when it does not exist)."""
    s = settings
    direct = Stage("direct", s.events_topic, s.app_id, s.app_id, events=s.events_topic)
    if s.keyed_by_model and not s.labels_topic:
        return [direct]
    sources = await _partitions_of(s.bootstrap_servers, s.events_topic, "events")
    labels = await _partitions_of(s.bootstrap_servers, s.labels_topic, "labels") if s.labels_topic else 0
    by_model = by_model_topic(s.app_id)
    routed = 0
    if sources == 1 and labels:  # an app that routed this topic before labels were read beside it: it goes on
        routed = await retrying("kafka", lambda: asyncio.to_thread(topic_partitions, s.bootstrap_servers, by_model))
    if sources == 1 and not (labels and routed):  # nothing to merge the events with: read directly, labels beside
        return [replace(direct, labels=s.labels_topic or "", label_partitions=labels)]
    sizes = {by_model: {"max.message.bytes": str(MAX_RECORD_BYTES)}}
    await retrying("kafka", lambda: asyncio.to_thread(ensure_topics, s.bootstrap_servers, [by_model],
                                                      s.model_partitions or sources, sizes))
    partitions = await retrying("kafka", lambda: asyncio.to_thread(topic_partitions, s.bootstrap_servers, by_model))
    route = Stage("route", s.events_topic, s.app_id, f"{s.app_id}:route", by_model, partitions, sources, s.events_topic)
    detect = Stage("detect", by_model, by_model, s.app_id, by_model, partitions, sources + labels, s.events_topic,
                   labels_from=sources if labels else 0)
    if not labels:
        return [route, detect]
    assert s.labels_topic is not None
    route_labels = Stage("route", s.labels_topic, f"{s.app_id}-labels", f"{s.app_id}:route-labels", by_model,
                         partitions, sources + labels, s.events_topic, source_base=sources)
    return [route, route_labels, detect]


async def _partitions_of(servers: str, topic: str, what: str) -> int:
    """The topic's partition count, once it exists (waiting for it, said once)."""
    said = False
    while not (count := await retrying("kafka", lambda: asyncio.to_thread(topic_partitions, servers, topic))):
        if not said:
            log.warning("waiting for the %s topic %s to be created", what, topic)
            said = True
        await asyncio.sleep(1.0)
    return count


async def _all_or_none(coroutines: list) -> None:
    """Run them together; the first to fail stops the others, and its error is raised."""
    tasks = [asyncio.ensure_future(c) for c in coroutines]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            task.result()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class ConsumerView:
    """What ``/healthz`` reads of the worker's consumers, taken together."""

    def __init__(self, consumers: list[PartitionConsumer]) -> None:
        self.consumers = consumers

    @property
    def kafka_down(self) -> bool:
        return any(c.kafka.down for c in self.consumers)

    @property
    def owned(self) -> dict:
        return {(c.stage.kind, tp): p for c in self.consumers for tp, p in c.owned.items()}

    def lag(self) -> int:
        return sum(c.lag() for c in self.consumers)


def run_worker(config: MonitorConfig, settings: WorkerSettings, loglevel: str = "warning") -> None:
    """Run the worker in the foreground until stopped; re-raise what stopped it, if anything did."""
    app = build_app(config, settings)
    app.failure = None  # type: ignore[attr-defined]
    if settings.metrics_port:
        start_http_server(settings.metrics_port, addr=settings.bind_host)
    worker = faust.Worker(app, loglevel=loglevel, quiet=True)
    try:
        worker.execute_from_commandline()
    except SystemExit:
        if app.failure is None:  # type: ignore[attr-defined]
            raise
    if app.failure is not None:  # type: ignore[attr-defined]
        raise app.failure  # type: ignore[attr-defined]
