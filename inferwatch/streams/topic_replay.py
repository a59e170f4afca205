"""Replay a time range of a Kafka topic through the core, into in-memory state.

Per partition the start is found with ``offsets_for_times`` and the end is
``--to`` (also by time) or the end offset taken when the replay starts. Each
partition is read by a child process: ``kcat`` when it is on the PATH
(:mod:`streams.kcat_reader`, about half the CPU a record), else librdkafka
through confluent-kafka (:mod:`streams.kafka_reader`). The consumers join no
group and commit nothing, so the live worker's group and state are never
touched.

The partitions are merged into one stream in event time
(:func:`in_event_time`): a model's detectors see its events in the order of
their timestamps, however the producers spread them over partitions (keyed
by model, by request id, or not keyed at all), and a topic replay of events
in time order gives the alerts of a file replay of the same events. The
same range gives the same alerts every time.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import numpy as np

from ..detectors.config import MonitorConfig
from ..detectors.types import Alert
from ..errors import ConfigError, KafkaUnavailable
from . import kcat_reader
from .decode import Lines, event_times
from .event_time import EventTimeMerger
from .kafka_reader import RangeReader, records
from .kafka_reader import consumer as kafka_consumer
from .kafka_security import kafka_security
from .labels import PLACE_SOURCE, LabelFeed, PerformanceWatch, from_labels, places
from .pipeline import SCHEMA_SAMPLE_LINES, Observer, Pipeline
from .replay import ReplaySummary, finish, reference_blocks, write_step
from .runtime import single_threaded_blas

__all__ = ["parse_time", "replay_topic", "publish_alerts", "in_event_time"]

CONNECT_SECONDS = 15.0  # how long an unreachable broker is waited for before the replay gives up

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
        raise ConfigError(f"time {text!r}: expected RFC 3339 (2026-11-01T00:00:00Z) or relative (-7d, -3h)") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def _ranges(bootstrap: str, topic: str, start: float, end: float | None) -> list:
    """(partition, first offset, end offset) per partition with events in [start, end), in partition order."""
    from confluent_kafka import KafkaException, TopicPartition

    consumer = kafka_consumer(bootstrap)
    try:
        try:
            meta = consumer.list_topics(topic, timeout=CONNECT_SECONDS).topics.get(topic)
        except KafkaException as exc:
            raise KafkaUnavailable(f"cannot reach Kafka at {bootstrap} within {CONNECT_SECONDS:g}s "
                                   f"({exc.args[0].str() if exc.args else exc}){kafka_security().hint()}") from None
        if meta is None or meta.error is not None or not meta.partitions:
            raise ConfigError(f"--topic: {topic!r} does not exist or has no partitions")
        tps = [TopicPartition(topic, p) for p in sorted(meta.partitions)]
        last = [consumer.get_watermark_offsets(tp, timeout=30)[1] for tp in tps]

        def at(seconds: float) -> list[int]:  # first offset at or after the time; the end when there is none
            found = consumer.offsets_for_times([TopicPartition(topic, tp.partition, int(seconds * 1000)) for tp in tps],
                                               timeout=30)
            return [f.offset if f.offset >= 0 else hi for f, hi in zip(found, last)]

        begin = at(start)
        stop = at(end) if end is not None else last
    finally:
        consumer.close()
    return [(tp, lo, hi) for tp, lo, hi in zip(tps, begin, stop) if hi > lo]


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
    labels: str | Path | None = None,
) -> ReplaySummary:
    """Run the core over the events of ``topic`` with timestamps in [start, end); ``labels``: a labels file
    joined to the predictions as in a file replay (:mod:`.labels`)."""
    started = time.perf_counter()
    ranges = _ranges(bootstrap, topic, start, end)
    summary = ReplaySummary()
    if not ranges:
        return summary
    total = sum(hi - lo for _, lo, hi in ranges)

    def run() -> Pipeline:
        sample: list = []
        for tp, lo, hi in ranges:  # the head of every partition: one may hold only some models, or garbage
            head = min(hi, lo + SCHEMA_SAMPLE_LINES)
            for _, values in records(bootstrap, tp.topic, tp.partition, lo, head, SCHEMA_SAMPLE_LINES):
                sample.extend(values)
        pipe = Pipeline.build(config, sample, reference_blocks(reference))
        if labels is not None:
            pipe.performance = PerformanceWatch(config, LabelFeed.from_file(labels))
            pipe.performance.fit_reference([line for block in reference_blocks(reference) or [] for line in block])
        done = [0]
        chunk = lines_per_chunk or config.batch_size
        open_reader = kcat_reader.KcatRangeReader if kcat_reader.available() else RangeReader
        readers = [open_reader(bootstrap, tp.topic, tp.partition, lo, hi, chunk) for tp, lo, hi in ranges]
        partitions = [tp.partition for tp, _, _ in ranges]
        try:
            held: list[tuple[np.ndarray, np.ndarray, Lines]] = []
            for merged in in_event_time([iter(r) for r in readers]):
                held.append(merged)
                if sum(len(v) for _, _, v in held) < pipe.step_lines(chunk):
                    continue
                step(pipe, held, partitions, done)
                held = []
            if held:
                step(pipe, held, partitions, done)
            if pipe.performance is not None:
                write_step(pipe.finish_labels(), summary, where_of([], np.empty(0), np.empty(0)), alerts_out)
                summary.labels = pipe.performance.summary()
        finally:
            for reader in readers:
                reader.close()
        return pipe

    def step(pipe: Pipeline, held, partitions: list[int], done: list[int]) -> None:
        sources = np.concatenate([s for s, _, _ in held])
        offsets = np.concatenate([o for _, o, _ in held])
        values = held[0][2] if len(held) == 1 else [v for _, _, part in held for v in part]
        if pipe.performance is not None:
            pipe.performance.places = places(np.asarray(partitions)[sources], offsets)
        result = pipe.step(values, decisions=outputs_out is not None, observer=observer, messages=True)
        where = where_of(partitions, sources, offsets)
        write_step(result, summary, where, alerts_out, outputs_out, dead_letters_out, where)
        done[0] += len(values)
        if progress is not None:
            progress(done[0], total)

    def where_of(partitions: list[int], sources: np.ndarray, offsets: np.ndarray):
        def where(i: int, alert: Alert | None = None) -> dict:
            if alert is not None and from_labels(alert):  # a prediction of this step or of an earlier one
                partition, offset = divmod(int(i), PLACE_SOURCE)
                return {"topic": topic, "partition": partition, "offset": offset}
            return {"topic": topic, "partition": partitions[int(sources[i])], "offset": int(offsets[i])}

        return where

    with single_threaded_blas():
        pipe = run()
    finish(summary, pipe, started)
    return summary


def in_event_time(sources: list[Iterator[tuple[np.ndarray, Lines]]]) -> Iterator[tuple[np.ndarray, np.ndarray, Lines]]:
    """Merge partitions, each a stream of (offsets, values) chunks, into one stream in event time.

    Yields (source index, offset, value) arrays in order. A message's place
    is its partition's latest event time so far (a message with no readable
    time, or one older than its partition's latest, keeps its place in its
    partition: Kafka's order within a partition is kept), ties broken by
    partition then offset. A message is released once every partition not yet
    at its end has read past its time (the watermark), so a partition whose
    times run ahead waits for the others; the order never depends on where
    the chunks were cut.

    >>> a = iter([(np.array([0, 1]), [b'{"timestamp": 1}', b'{"timestamp": 5}'])])
    >>> b = iter([(np.array([0, 1]), [b'{"timestamp": 2}', b'{"timestamp": 3}'])])
    >>> [(int(s), int(o)) for src, off, _ in in_event_time([a, b]) for s, o in zip(src, off)]
    [(0, 0), (1, 0), (1, 1), (0, 1)]
    """
    n = len(sources)
    if n == 1:  # one partition: its own order, its chunks as they come
        for offs, vals in sources[0]:
            yield np.zeros(len(offs), dtype=np.int64), np.asarray(offs, dtype=np.int64), vals
        return
    merger = EventTimeMerger(range(n))

    def pull(s: int) -> None:
        """Give the merger partition ``s``'s next chunk (or close it at its end)."""
        chunk = next(sources[s], None)
        if chunk is None:
            merger.close(s)
            return
        vals = list(chunk[1])
        merger.push(s, chunk[0], event_times(vals), vals)

    while True:
        for s in range(n):
            while s not in merger.closed and not len(merger.keys[s]):
                pull(s)
        if not merger.pending():
            return
        source, offset, values = merger.release()
        if not len(source):  # what is held ties with the watermark: read on where it is set
            for s in merger.holding():
                pull(s)
            continue
        yield source, offset, values


def publish_alerts(bootstrap: str, topic: str, lines: list[bytes]) -> int:
    """Produce alert records (JSON lines) to ``topic``, keyed by model, and wait for the acks."""
    import orjson
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", retries=5, **kafka_security().kafka_python())
    try:
        for line in lines:
            producer.send(topic, key=orjson.loads(line)["model"].encode(), value=line)
        producer.flush()
    finally:
        producer.close()
    return len(lines)
