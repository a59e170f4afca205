"""Read one partition's offset range in a child process and stream it to the parent as frames.

Turning Kafka records into Python objects costs ~1.5 us a record under the
GIL, as much as monitoring them. A topic replay therefore reads in a child
process (``python -m streams.kafka_reader``), which needs nothing but
confluent-kafka, while the parent decodes and monitors: the two run on two
cores instead of taking turns.

Frame: ``<qq`` (records, payload bytes), then the records' offsets
(``int64``), their value lengths (``int64``) and the values joined by
newlines: the parent hands that payload to the JSON reader as it is, as a
:class:`~streams.lines.LineBlock`.
A frame of 0 records ends the range. On an error the child writes it to
stderr and exits non-zero; :class:`RangeReader` raises it.
"""

from __future__ import annotations

import logging
import struct
import subprocess
import sys
import tempfile
from bisect import bisect_left
from collections.abc import Iterator
from typing import BinaryIO

import numpy as np

from .kafka_security import child_env, kafka_security
from .lines import LineBlock

__all__ = ["consumer", "RangeReader", "records"]

HEADER = struct.Struct("<qq")
log = logging.getLogger("inferwatch.kafka")
# librdkafka's own log lines (one per failed connection attempt, per broker): shown with --log-level debug only;
# an outage is reported once by whoever waits for Kafka.
librdkafka_log = logging.getLogger("inferwatch.librdkafka")

# librdkafka stops fetching a partition for a second once its local queue holds
# queued.min.messages records (100,000 by default; before librdkafka 2.2 the pause
# cannot be configured). A busy reader drains that long before and then waits:
# every consumer here bounds its queue by size instead, which takes longer to drain.
QUEUE_BY_SIZE = {"queued.min.messages": 10_000_000, "queued.max.messages.kbytes": 65_536}


def by_partition(messages: list) -> tuple[dict[int, tuple[list[int], list[bytes]]], list]:
    """librdkafka's messages as (offsets, values) per partition, in order, and the messages that carry a
    transient error (librdkafka carries on by itself: a broker away, an end of partition); a fatal one raises."""
    errors = [m.error() for m in messages]
    failed: list = []
    if any(e is not None for e in errors):
        fatal = next((e for e in errors if e is not None and e.fatal()), None)
        if fatal is not None:
            from confluent_kafka import KafkaException

            raise KafkaException(fatal)
        failed = [m for m, e in zip(messages, errors) if e is not None]
        messages = [m for m, e in zip(messages, errors) if e is None]
    partitions = [m.partition() for m in messages]
    offsets = [m.offset() for m in messages]
    values = [m.value() or b"" for m in messages]
    if not messages:
        return {}, failed
    if partitions[0] == partitions[-1] and partitions.count(partitions[0]) == len(partitions):  # the usual
        return {partitions[0]: (offsets, values)}, failed
    grouped: dict[int, tuple[list[int], list[bytes]]] = {}
    for number, offset, value in zip(partitions, offsets, values):
        group = grouped.get(number)
        if group is None:
            group = grouped[number] = ([], [])
        group[0].append(offset)
        group[1].append(value)
    return grouped, failed


def consumer(bootstrap: str):
    """A librdkafka consumer that only assigns: it never joins a group and commits nothing."""
    from confluent_kafka import Consumer

    return Consumer({
        "bootstrap.servers": bootstrap, "group.id": "inferwatch-replay", "enable.auto.commit": False,
        "enable.auto.offset.store": False, "fetch.wait.max.ms": 10,
        "max.partition.fetch.bytes": 8 << 20, "fetch.max.bytes": 64 << 20, **QUEUE_BY_SIZE, "logger": librdkafka_log,
        **kafka_security().librdkafka(),
    })


def records(bootstrap: str, topic: str, partition: int, lo: int, hi: int,
            chunk: int) -> Iterator[tuple[list[int], list[bytes]]]:
    """(offsets, values) chunks covering offsets [lo, hi) of one partition, in order (in this process)."""
    from confluent_kafka import KafkaException, TopicPartition

    kafka = consumer(bootstrap)
    try:
        kafka.assign([TopicPartition(topic, partition, lo)])
        offsets: list[int] = []
        values: list[bytes] = []
        upcoming = lo
        while True:
            # consume() waits until it has that many records or the timeout: never ask past the range's end
            got = kafka.consume(num_messages=max(1, min(chunk - len(offsets), hi - upcoming)), timeout=1.0)
            if got:
                upcoming = got[-1].offset() + 1
            for r in got:
                if r.error() is not None:
                    raise KafkaException(r.error())
            offsets += [r.offset() for r in got]
            values += [r.value() or b"" for r in got]
            if offsets and offsets[-1] >= hi:
                cut = bisect_left(offsets, hi)
                del offsets[cut:], values[cut:]
            done = bool(offsets) and offsets[-1] >= hi - 1
            if not got and kafka.position([TopicPartition(topic, partition)])[0].offset >= hi:
                done = True  # the range ends with offsets that carry no record (compaction, transaction markers)
            if offsets and (len(offsets) >= chunk or done):
                yield offsets, values
                offsets, values = [], []
            if done:
                return
    finally:
        kafka.close()


def write_frames(chunks: Iterator[tuple[list[int], list[bytes]]], out: BinaryIO) -> None:
    for offsets, values in chunks:
        lengths = np.fromiter(map(len, values), dtype=np.int64, count=len(values))
        payload = b"\n".join(values)
        out.write(HEADER.pack(len(offsets), len(payload)))
        out.write(np.asarray(offsets, dtype=np.int64).tobytes())
        out.write(lengths.tobytes())
        out.write(payload)
    out.write(HEADER.pack(0, 0))
    out.flush()


def read_frames(source: BinaryIO) -> Iterator[tuple[np.ndarray, LineBlock]]:
    while True:
        n, size = HEADER.unpack(_exactly(source, HEADER.size))
        if n == 0:
            return
        offsets = np.frombuffer(_exactly(source, 8 * n), dtype=np.int64)
        lengths = np.frombuffer(_exactly(source, 8 * n), dtype=np.int64)
        ends = np.cumsum(lengths + 1) - 1  # one newline after each value but the last
        yield offsets, LineBlock(_exactly(source, size), ends - lengths, ends)


def _exactly(source: BinaryIO, size: int) -> bytes:
    data = source.read(size)
    if len(data) != size:
        raise EOFError(f"the reader stopped after {len(data)} of {size} bytes")
    return data


class RangeReader:
    """(offsets, values) chunks covering [lo, hi) of one partition, read by a child process.

    Values come as a :class:`~streams.lines.LineBlock`, offsets as an ``int64`` array.

    The child starts at construction, so the next partition's reader can
    fetch while this one is being monitored. Iterate once; ``close`` stops it.
    """

    def __init__(self, bootstrap: str, topic: str, partition: int, lo: int, hi: int, chunk: int) -> None:
        self.name = f"{topic}:{partition}"
        self.errors = tempfile.TemporaryFile()
        self.child = subprocess.Popen(
            [sys.executable, "-m", "inferwatch.streams.kafka_reader", bootstrap, topic, str(partition), str(lo), str(hi),
             str(chunk)], stdout=subprocess.PIPE, stderr=self.errors, bufsize=1 << 20, env=child_env())

    def __iter__(self) -> Iterator[tuple[np.ndarray, LineBlock]]:
        try:
            yield from read_frames(self.child.stdout)
        except EOFError:
            self.child.wait()
            self.errors.seek(0)
            reason = self.errors.read().decode(errors="replace").strip()[-2000:]
            raise RuntimeError(f"reading {self.name} failed: {reason or 'the reader exited'}") from None
        finally:
            self.close()

    def close(self) -> None:
        if self.child.poll() is None:
            self.child.kill()
        self.child.wait()
        self.child.stdout.close()
        self.errors.close()


def main(argv: list[str]) -> int:
    bootstrap, topic, partition, lo, hi, chunk = argv
    try:
        write_frames(records(bootstrap, topic, int(partition), int(lo), int(hi), int(chunk)), sys.stdout.buffer)
    except BrokenPipeError:  # the parent stopped reading
        return 1
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises it
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
