"""The live worker: a Faust agent that runs the core on Kafka partitions, state in Redis.

Per partition batch (``take_events`` with a size and a time bound):

1. load the partition's state from Redis (next offset, schema, core state);
2. skip every event below the stored next offset (faust-streaming seeks to
   Kafka's committed offsets after a rebalance, so a seek of our own would be
   overwritten: the offset stored with the state is the truth);
3. decode, guard and run the core in one pass; publish alerts (keyed by
   model), dead letters and, when the config has rules, every event's guard
   decision to the guarded-outputs topic; wait for the broker's acks;
4. write the new state and the next offset in one compare-and-set (Lua).

A crash between 3 and 4 re-publishes the same alerts with the same
``alert_id`` (downstream de-duplicates on it); the state never counts an
event twice. Redis or Kafka outages pause the agent and are retried with
back-off. The agent runs with ``concurrency=1`` (faust-streaming #606).

Detection state is per partition: produce events keyed by model so that a
model's events share a partition (see the README).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field

import faust
import orjson
from faust.types import TP
from prometheus_client import Counter, Gauge, Histogram, start_http_server

from detectors.config import MonitorConfig
from detectors.monitor import Monitor

from .decode import Decoder, Schema, infer_schema
from .publish import BatchPublisher
from .replay import Guards
from .runtime import single_threaded_blas
from .state_store import PartitionState, RedisStateStore, StaleState, retrying

__all__ = ["WorkerSettings", "PartitionOutput", "build_app", "process_partition_batch"]

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
    batch_size: int = 2000
    batch_seconds: float = 0.5
    web_port: int = 6066
    metrics_port: int | None = 9108
    bind_host: str = "127.0.0.1"  # where /metrics and Faust's web server listen (0.0.0.0 in a container)
    session_timeout: float = 10.0  # a killed worker's partitions move after this long


@dataclass
class PartitionOutput:
    """What one partition batch publishes: (key, value) pairs per topic, in offset order."""

    alerts: list[tuple[bytes, bytes]] = field(default_factory=list)
    dead: list[bytes] = field(default_factory=list)
    decisions: list[tuple[bytes, bytes]] = field(default_factory=list)


def process_partition_batch(config: MonitorConfig, state: PartitionState, topic: str, partition: int,
                            offsets: list[int], values: list[bytes]) -> PartitionOutput:
    """Run the guard and the core over one partition's events; update ``state``; return what to publish.

    Events below ``state.next_offset`` were already counted and are skipped.
    """
    out = PartitionOutput()
    keep = [i for i, off in enumerate(offsets) if off >= state.next_offset]
    if not keep:
        return out
    offsets = [offsets[i] for i in keep]
    values = [values[i] for i in keep]
    if state.schema is None:
        sample = [v for v in values[:1000] if v.strip()]
        state.schema = infer_schema(sample, config).to_dict()
    schema = Schema.from_dict(state.schema)
    guards = _guards(config, schema)
    monitor = Monitor.from_bytes(state.monitor, config) if state.monitor else Monitor(config)
    decoded = Decoder(schema, config.limits).decode(values)
    out.dead = [orjson.dumps(d.record({"topic": topic, "partition": partition, "offset": offsets[d.index]}))
                for d in decoded.dead]
    alerts: list[tuple[int, bytes, bytes]] = []
    decisions: list[tuple[int, bytes, bytes]] = []
    for batch, rows in zip(decoded.batches, decoded.rows):
        guard = guards.for_model(batch.model)
        hits = guard.violations(batch) if guard.rules else None
        key = batch.model.encode()
        if guard.rules:
            decisions += [(offsets[r], key, orjson.dumps(d)) for r, d in zip(rows.tolist(), guard.decide(batch, hits))]
        for alert in monitor.process(batch, hits):
            offset = offsets[int(rows[alert.row])]
            position = {"topic": topic, "partition": partition, "offset": offset}
            alerts.append((offset, key, orjson.dumps(alert.to_record(position))))
    out.alerts = [(k, v) for _, k, v in sorted(alerts, key=lambda a: a[0])]
    out.decisions = [(k, v) for _, k, v in sorted(decisions, key=lambda d: d[0])]
    state.monitor = monitor.to_bytes()
    state.next_offset = offsets[-1] + 1
    state.events += decoded.events
    state.dead_letters += len(out.dead)
    return out


_COMPILED: dict[tuple[int, bytes], tuple[MonitorConfig, Guards]] = {}


def _guards(config: MonitorConfig, schema: Schema) -> Guards:
    """Rules compiled once per (config, schema), not per batch."""
    key = (id(config), orjson.dumps(schema.to_dict()))
    hit = _COMPILED.get(key)
    if hit is None or hit[0] is not config:
        hit = _COMPILED[key] = (config, Guards(config, schema))
    return hit[1]


class WorkerMetrics:
    """Prometheus series of the worker (served on ``/metrics``)."""

    def __init__(self) -> None:
        self.events = Counter("inferwatch_events", "Valid events monitored", ["partition"])
        self.dead = Counter("inferwatch_dead_letters", "Invalid events sent to the dead-letter topic", ["partition"])
        self.alerts = Counter("inferwatch_alerts", "Alerts published", ["model", "status"])
        self.batch = Histogram("inferwatch_batch_seconds", "Time to process one partition batch",
                               buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.lag = Gauge("inferwatch_consumer_lag", "Events in the partition not yet monitored", ["topic", "partition"])

    def observe(self, state, before, alerts: list[bytes], seconds: float) -> None:
        self.events.labels("all").inc(state.events - before[0])
        self.dead.labels("all").inc(state.dead_letters - before[1])
        for _, raw in alerts:
            alert = orjson.loads(raw)
            self.alerts.labels(alert["model"], alert["status"]).inc()
        self.batch.observe(seconds)


def raw_faust_app(app_id: str, bootstrap_servers: str, web_port: int, web_host: str, **settings) -> faust.App:
    """A Faust app on raw bytes with in-memory tables (the state that matters lives elsewhere)."""
    return faust.App(app_id, broker=f"kafka://{bootstrap_servers}", store="memory://", value_serializer="raw",
                     key_serializer="raw", web_port=web_port, web_host=web_host, **settings)


def build_app(config: MonitorConfig, settings: WorkerSettings) -> faust.App:
    app = raw_faust_app(
        settings.app_id, settings.bootstrap_servers, settings.web_port, settings.bind_host,
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        broker_commit_every=1000,
        broker_session_timeout=settings.session_timeout,
        broker_max_poll_records=5000,  # Faust's per-event cost dominates: fetch and buffer big batches
        stream_buffer_maxsize=65536,
        consumer_max_fetch_size=8 << 20,
        broker_heartbeat_interval=min(3.0, settings.session_timeout / 3),
    )
    events = app.topic(settings.events_topic, value_type=bytes, value_serializer="raw")
    alerts_topic = app.topic(settings.alerts_topic, value_serializer="raw", key_serializer="raw")
    dead_topic = app.topic(settings.dead_letter_topic, value_serializer="raw", key_serializer="raw")
    store = RedisStateStore(settings.redis_url, namespace=settings.app_id)
    metrics = WorkerMetrics()

    @app.agent(events, concurrency=1)
    async def monitor(stream):
        publisher = BatchPublisher(settings.bootstrap_servers)  # one decision per event: Faust sends are too slow
        try:
            with single_threaded_blas():
                async for batch in stream.take_events(settings.batch_size, within=settings.batch_seconds):
                    by_partition: dict[tuple[str, int], list] = defaultdict(list)
                    for event in batch:
                        msg = event.message
                        by_partition[(msg.topic, msg.partition)].append((msg.offset, event.value))
                    for (topic, partition), items in sorted(by_partition.items()):
                        items.sort()
                        started = time.perf_counter()
                        state, loaded = await retrying("redis", lambda: store.load(topic, partition))
                        before = (state.events, state.dead_letters)
                        out = process_partition_batch(
                            config, state, topic, partition, [o for o, _ in items], [v for _, v in items])
                        await publisher.deliver([(settings.outputs_topic, None, out.decisions)])
                        futures = []
                        for key, value in out.alerts:
                            futures.append(await alerts_topic.send(key=key, value=value))
                        for value in out.dead:
                            futures.append(await dead_topic.send(key=None, value=value))
                        for fut in futures:
                            await fut
                        try:
                            await retrying("redis", lambda: store.save(topic, partition, state, loaded))
                        except StaleState as exc:  # lost the partition in a rebalance: the new owner counts
                            log.warning("not saving: %s", exc)
                            continue
                        metrics.observe(state, before, out.alerts, time.perf_counter() - started)
                        highwater = app.consumer.highwater(TP(topic, partition))
                        if highwater is not None:
                            metrics.lag.labels(topic, str(partition)).set(max(highwater - state.next_offset, 0))
                    yield len(batch)
        finally:
            await publisher.stop()

    return app


def run_worker(config: MonitorConfig, settings: WorkerSettings, loglevel: str = "warning") -> None:
    """Run the Faust worker in the foreground until stopped."""
    app = build_app(config, settings)
    if settings.metrics_port:
        start_http_server(settings.metrics_port, addr=settings.bind_host)
    worker = faust.Worker(app, loglevel=loglevel, quiet=True)
    worker.execute_from_commandline()
