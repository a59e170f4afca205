"""Replay a time range of a Kafka topic through the core, into in-memory state.

Per partition the start is found with kafka-python's ``offsets_for_times`` and the end is
``--to`` (also by time) or the end offset taken when the replay starts.
Partitions are read one after the other, in partition order, each in offset
order: the same range gives the same alerts every time. The consumer has no
group and commits nothing, so the live worker's group and state are never
touched. With events keyed by model (one model, one partition), a topic
replay gives the same alerts as a file replay of the same events.
"""

from __future__ import annotations

import asyncio
import re
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Callable

from detectors.config import MonitorConfig
from .replay import SCHEMA_SAMPLE_LINES, Observer, ReplaySummary, prepare_core, run_core, write_dead
from .runtime import single_threaded_blas

__all__ = ["parse_time", "replay_topic", "publish_alerts"]

_RELATIVE = re.compile(r"^-(\d+(?:\.\d+)?)([smhdw])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_time(text: str, now: float) -> float:
    """Epoch seconds from RFC 3339 or a relative form (``-7d``, ``-3h``, ``-15m``, ``-30s``, ``-1w``).

    >>> parse_time("-2h", now=10_000.0)
    2800.0
    >>> parse_time("2026-11-01T00:00:00Z", now=0.0)
    1793491200.0
    """
    match = _RELATIVE.match(text.strip())
    if match:
        return now - float(match.group(1)) * _UNIT[match.group(2)]
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"time {text!r}: expected RFC 3339 (2026-11-01T00:00:00Z) or relative (-7d, -3h)") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.timestamp()


def _ranges(consumer, topic: str, start: float, end: float | None):
    from kafka import TopicPartition

    partitions = sorted(consumer.partitions_for_topic(topic) or [])
    if not partitions:
        raise ValueError(f"topic {topic!r} does not exist or has no partitions")
    tps = [TopicPartition(topic, p) for p in partitions]
    last = consumer.end_offsets(tps)
    begin = consumer.offsets_for_times({tp: int(start * 1000) for tp in tps})
    stop = consumer.offsets_for_times({tp: int(end * 1000) for tp in tps}) if end is not None else {}
    out = []
    for tp in tps:
        lo = begin[tp].offset if begin.get(tp) else last[tp]
        hi = stop[tp].offset if stop.get(tp) else last[tp]
        if hi > lo:
            out.append((tp, lo, hi))
    return out


async def _read(bootstrap: str, tp, lo: int, hi: int, chunk: int, handle: Callable[[list], None]) -> None:
    """Call ``handle`` with lists of (offset, value) covering offsets [lo, hi) of one partition, in order.

    aiokafka reads (its record decoding is compiled; kafka-python's is not, and
    was the bottleneck at ~20k events/s); no group, nothing committed.
    """
    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                max_partition_fetch_bytes=8 << 20)
    await consumer.start()
    try:
        part = TopicPartition(tp.topic, tp.partition)
        consumer.assign([part])
        consumer.seek(part, lo)
        pending: list = []
        while True:
            records = (await consumer.getmany(part, timeout_ms=1000, max_records=chunk)).get(part, [])
            pending += [(r.offset, r.value) for r in records if r.offset < hi]
            done = bool(pending) and pending[-1][0] >= hi - 1
            if not records and await consumer.position(part) >= hi:
                done = True
            if pending and (len(pending) >= chunk or done):
                handle(pending)
                pending = []
            if done:
                return
    finally:
        await consumer.stop()


def replay_topic(
    bootstrap: str,
    topic: str,
    start: float,
    end: float | None,
    config: MonitorConfig,
    alerts_out: IO[bytes],
    dead_letters_out: IO[bytes] | None = None,
    progress: Callable[[int, int], None] | None = None,
    outputs_out: IO[bytes] | None = None,
    reference: str | Path | None = None,
    observer: Observer | None = None,
    lines_per_chunk: int | None = None,
) -> ReplaySummary:
    """Run the core over the events of ``topic`` with timestamps in [start, end)."""
    from kafka import KafkaConsumer

    started = time.perf_counter()
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    try:
        ranges = _ranges(consumer, topic, start, end)
    finally:
        consumer.close()
    summary = ReplaySummary()
    if not ranges:
        return summary
    total = sum(hi - lo for _, lo, hi in ranges)

    async def run() -> None:
        sample: list = []
        for tp, lo, hi in ranges:  # the head of every partition: one may hold only some models, or garbage
            head = min(hi, lo + SCHEMA_SAMPLE_LINES)
            await _read(bootstrap, tp, lo, head, SCHEMA_SAMPLE_LINES, lambda items: sample.extend(v for _, v in items))
        decoder, guards, monitor = prepare_core(config, sample, reference)
        done = [0]
        for tp, lo, hi in ranges:
            def handle(items, tp=tp):
                offsets = [o for o, _ in items]
                decoded = decoder.decode([v or b"" for _, v in items])

                def where(i):
                    return {"topic": tp.topic, "partition": tp.partition, "offset": offsets[i]}

                summary.blank_lines += decoded.blank
                write_dead(decoded, dead_letters_out, where, summary)
                run_core(monitor, decoded, alerts_out, summary, where, guards, outputs_out, observer)
                done[0] += len(items)
                if progress is not None:
                    progress(done[0], total)

            await _read(bootstrap, tp, lo, hi, lines_per_chunk or config.batch_size, handle)

    with single_threaded_blas():
        asyncio.run(run())
    summary.seconds = time.perf_counter() - started
    return summary


def publish_alerts(bootstrap: str, topic: str, lines: list[bytes]) -> int:
    """Produce alert records (JSON lines) to ``topic``, keyed by model, and wait for the acks."""
    import orjson
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", retries=5)
    try:
        for line in lines:
            producer.send(topic, key=orjson.loads(line)["model"].encode(), value=line)
        producer.flush()
    finally:
        producer.close()
    return len(lines)
