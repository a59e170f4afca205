"""Replay a time range of a Kafka topic through the core, into in-memory state.

Per partition the start is found with ``offsets_for_times`` and the end is
``--to`` (also by time) or the end offset taken when the replay starts.
Partitions are read one after the other, in partition order, each in offset
order: the same range gives the same alerts every time. The consumer has no
group and commits nothing, so the live worker's group and state are never
touched. With events keyed by model (one model, one partition), a topic
replay gives the same alerts as a file replay of the same events.
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timezone
from typing import IO, Callable

from detectors.config import MonitorConfig
from detectors.monitor import Monitor

from .decode import Decoder, infer_schema
from .replay import SCHEMA_SAMPLE_LINES, ReplaySummary, run_core, write_dead
from .runtime import single_threaded_blas

__all__ = ["parse_time", "replay_topic"]

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


def _read(consumer, tp, lo: int, hi: int, chunk: int):
    """Yield lists of (offset, value) for offsets [lo, hi) of one partition."""
    consumer.assign([tp])
    consumer.seek(tp, lo)
    pending = []
    while True:
        records = consumer.poll(timeout_ms=1000, max_records=chunk).get(tp, [])
        for r in records:
            if r.offset >= hi:
                break
            pending.append((r.offset, r.value))
        if pending and (len(pending) >= chunk or pending[-1][0] >= hi - 1):
            yield pending
            if pending[-1][0] >= hi - 1:
                return
            pending = []
        elif not records and consumer.position(tp) >= hi:
            if pending:
                yield pending
            return


def replay_topic(
    bootstrap: str,
    topic: str,
    start: float,
    end: float | None,
    config: MonitorConfig,
    alerts_out: IO[bytes],
    dead_letters_out: IO[bytes] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ReplaySummary:
    """Run the core over the events of ``topic`` with timestamps in [start, end)."""
    from kafka import KafkaConsumer

    started = time.perf_counter()
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                             max_partition_fetch_bytes=8 << 20)
    try:
        ranges = _ranges(consumer, topic, start, end)
        total = sum(hi - lo for _, lo, hi in ranges)
        summary = ReplaySummary()
        if not ranges:
            return summary
        sample = []
        for tp, lo, hi in ranges:  # the head of every partition: one may hold only some models, or garbage
            part = next(_read(consumer, tp, lo, min(hi, lo + SCHEMA_SAMPLE_LINES), SCHEMA_SAMPLE_LINES), [])
            sample += [v for _, v in part]
        tags = tuple(sorted({t for m in [*config.models.values(), config.default] for t in m.segments}))
        decoder = Decoder(infer_schema([s for s in sample if s and s.strip()], config, tags), config.limits)
        monitor = Monitor(config)
        done = 0
        with single_threaded_blas():
            for tp, lo, hi in ranges:
                for items in _read(consumer, tp, lo, hi, config.batch_size):
                    offsets = [o for o, _ in items]
                    decoded = decoder.decode([v or b"" for _, v in items])

                    def where(i, tp=tp, offsets=offsets):
                        return {"topic": tp.topic, "partition": tp.partition, "offset": offsets[i]}

                    summary.blank_lines += decoded.blank
                    write_dead(decoded, dead_letters_out, where, summary)
                    run_core(monitor, decoded, alerts_out, summary, where)
                    done += len(items)
                    if progress is not None:
                        progress(done, total)
        summary.seconds = time.perf_counter() - started
        return summary
    finally:
        consumer.close()
