"""The guard from topic to topic: a Faust agent, one decision per event, order kept.

Every event of the source topic becomes one decision (DESIGN.md section 4)
on the target topic, in the same partition and in the same order; an
invalid event goes to the dead-letter topic instead, with its reason, its
position and its bytes. The target and dead-letter topics are created with
the source's partition count when missing (a target with fewer partitions
is refused at start-up). Delivery is at least once: after a crash a
decision may be sent twice, and carries its ``event_id`` to tell.
"""

from __future__ import annotations

import logging
import socket
from collections import defaultdict
from dataclasses import dataclass

import faust
import msgspec
import orjson

from .decode import DeadLetter, dead_letter_shrinker
from .guard import Guard, Rejection
from .kafka_security import kafka_security
from .publish import BatchPublisher, ensure_topics
from .runtime import FAUST_WEB_PAGES_OFF, faust_datadir

__all__ = ["TopicGuardSettings", "build_topic_guard_app", "prepare_topics", "run_topic_guard"]

log = logging.getLogger("inferwatch.guard")
_JSON = msgspec.json.Encoder()


@dataclass(frozen=True)
class TopicGuardSettings:
    bootstrap_servers: str
    from_topic: str
    to_topic: str
    dead_letter_topic: str = "inferwatch-dead-letters"
    app_id: str = "inferwatch-guard"
    batch_size: int = 1000
    batch_seconds: float = 0.005  # a serving path: wait little for a batch to fill
    web_port: int = 6067
    bind_host: str = "127.0.0.1"
    http_security: object = None  # http_guard.HttpSecurity of the HTTP guard it serves beside, if any


def raw_faust_app(app_id: str, bootstrap_servers: str, web_port: int, web_host: str, **settings) -> faust.App:
    """A Faust app on raw bytes with in-memory tables (the state that matters lives elsewhere)."""
    return faust.App(app_id, broker=f"kafka://{bootstrap_servers}", store="memory://", value_serializer="raw",
                     key_serializer="raw", web_port=web_port, web_host=web_host, datadir=faust_datadir(app_id),
                     **{**FAUST_WEB_PAGES_OFF, **kafka_security().faust(), **settings})


def prepare_topics(settings: TopicGuardSettings, dead_letter_bytes: int) -> int:
    """The source's partition count; create the target and dead-letter topics with it when missing."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers, **kafka_security().kafka_python())
    try:
        source = consumer.partitions_for_topic(settings.from_topic)
        if not source:
            raise ValueError(f"--from-topic {settings.from_topic!r} does not exist")
        target = consumer.partitions_for_topic(settings.to_topic)
    finally:
        consumer.close()
    n = len(source)
    if target and len(target) < n:
        raise ValueError(f"--to-topic {settings.to_topic!r} has {len(target)} partitions, fewer than the "
                         f"{n} of {settings.from_topic!r}: decisions could not keep their partition")
    ensure_topics(settings.bootstrap_servers, [settings.to_topic, settings.dead_letter_topic], partitions=n,
                  configs={settings.dead_letter_topic: {"max.message.bytes": str(dead_letter_bytes)}})
    return n


def build_topic_guard_app(guard: Guard, settings: TopicGuardSettings) -> faust.App:
    app = raw_faust_app(
        settings.app_id, settings.bootstrap_servers, settings.web_port, settings.bind_host,
        topic_allow_declare=False,
        consumer_auto_offset_reset="earliest",
        broker_max_poll_records=5000,
        stream_buffer_maxsize=65536,
    )
    source = app.topic(settings.from_topic, value_type=bytes, value_serializer="raw")

    cap = guard.config.limits.dead_letter_bytes

    shrink = dead_letter_shrinker(settings.dead_letter_topic)

    @app.agent(source, concurrency=1)
    async def guard_events(stream):
        publisher = BatchPublisher(settings.bootstrap_servers)
        try:
            async for batch in stream.take_events(settings.batch_size, within=settings.batch_seconds):
                by_partition: dict[tuple[str, int], list] = defaultdict(list)
                for event in batch:
                    msg = event.message
                    by_partition[(msg.topic, msg.partition)].append((msg.offset, msg.key, event.value))
                outgoing = []
                for (topic, partition), items in sorted(by_partition.items()):
                    items.sort(key=lambda item: item[0])
                    decisions = guard.check_all([value for _, _, value in items])
                    good, bad = [], []
                    for (offset, key, value), decision in zip(items, decisions):
                        if isinstance(decision, Rejection):
                            source = {"topic": topic, "partition": partition, "offset": offset}
                            bad.append((key, orjson.dumps(DeadLetter(decision.error, 0, value).record(source, cap))))
                        else:
                            good.append((key, _JSON.encode(decision)))
                    outgoing += [(settings.to_topic, partition, good), (settings.dead_letter_topic, None, bad)]
                await publisher.deliver(outgoing, shrink=shrink)  # acked before Faust may commit these offsets
                yield len(batch)
        finally:
            await publisher.stop()

    return app


def run_topic_guard(guard: Guard, settings: TopicGuardSettings, http: socket.socket | None = None,
                    loglevel: str = "warning") -> None:
    """Run the topic guard in the foreground (and the HTTP guard on the listening socket ``http``, if given)."""
    prepare_topics(settings, guard.config.limits.dead_letter_bytes)
    app = build_topic_guard_app(guard, settings)
    if http is not None:
        from .http_guard import http_server

        @app.task
        async def serve_http() -> None:
            await http_server(guard, settings.http_security).serve(sockets=[http])

    faust.Worker(app, loglevel=loglevel, quiet=True).execute_from_commandline()
