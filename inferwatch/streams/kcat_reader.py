"""Read one partition's offset range with kcat, librdkafka's command-line client, in a child process.

Python Kafka clients build an object per record (~1.2 us each with
confluent-kafka, ~3 us with aiokafka): for a replay that is most of the
cost. kcat writes the records as text, ``<offset> <size>\\n<value>\\n``,
and a compiled pass here cuts that stream into offsets and a
:class:`~streams.lines.LineBlock` of the values, a few nanoseconds a record.
Used when ``kcat`` is on the PATH; :class:`~streams.kafka_reader.RangeReader`
is the fallback.

>>> data = np.frombuffer(b"7 2\\nab\\n8 -1\\n\\n9 3\\nc\\nd\\n10 5\\nxy", dtype=np.uint8)
>>> offsets, block, used = parse_records(data, limit=10)
>>> offsets.tolist(), list(block), used
([7, 8, 9], [b'ab', b'', b'c\\nd'], 21)
"""

from __future__ import annotations

import atexit
import fcntl
import os
import queue
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator

import numpy as np
from ..detectors.compiled import njit

from .kafka_reader import QUEUE_BY_SIZE
from .lines import LineBlock

__all__ = ["available", "KcatRangeReader", "parse_records"]

READ_BYTES = 4 << 20
AHEAD = 3  # chunks read ahead of the one being monitored
QUEUE_SETTINGS = tuple(arg for key, value in QUEUE_BY_SIZE.items() for arg in ("-X", f"{key}={value}"))


def available() -> bool:
    return shutil.which("kcat") is not None


@njit(cache=True, nogil=True)
def _number(data, pos, stop, end):
    """Decimal at ``pos`` up to byte ``stop``: (value, position after ``stop``); -2 if malformed, -1 if cut off."""
    value, negative, digits = 0, False, 0
    if pos < end and data[pos] == 45:
        negative = True
        pos += 1
    while pos < end and data[pos] != stop:
        d = data[pos] - 48
        if d < 0 or d > 9:
            return 0, -2
        value = value * 10 + d
        digits += 1
        pos += 1
    if pos >= end:
        return 0, -1
    if digits == 0:
        return 0, -2
    return (-value if negative else value), pos + 1


@njit(cache=True, nogil=True)
def _parse(data, limit, offsets, starts, lengths):
    end = data.shape[0]
    pos, n = 0, 0
    while n < limit:
        offset, at = _number(data, pos, 32, end)
        if at < 0:
            return n, pos, at == -2
        size, at = _number(data, at, 10, end)
        if at < 0:
            return n, pos, at == -2
        size = max(size, 0)  # -1: a null value
        if at + size + 1 > end:
            return n, pos, False
        if data[at + size] != 10:
            return n, pos, True
        offsets[n], starts[n], lengths[n] = offset, at, size
        n += 1
        pos = at + size + 1
    return n, pos, False


@njit(cache=True, nogil=True)
def _pack(data, starts, lengths, out):
    k = 0
    for i in range(starts.shape[0]):
        if i:
            out[k] = 10
            k += 1
        out[k:k + lengths[i]] = data[starts[i]:starts[i] + lengths[i]]
        k += lengths[i]


def parse_records(data: np.ndarray, limit: int) -> tuple[np.ndarray, LineBlock, int]:
    """Up to ``limit`` complete records of kcat's output: (offsets, values, bytes used)."""
    room = min(limit, data.shape[0] // 4 + 1)  # a record takes at least 4 bytes
    offsets, starts, lengths = (np.empty(room, dtype=np.int64) for _ in range(3))
    n, used, malformed = _parse(data, limit, offsets, starts, lengths)
    if malformed:
        raise ValueError(f"kcat wrote something that is not a record at byte {used}: {bytes(data[used:used + 80])!r}")
    starts, lengths = starts[:n], lengths[:n]
    out = np.empty(max(int(lengths.sum()) + n - 1, 0), dtype=np.uint8)
    _pack(data, starts, lengths, out)
    ends = np.cumsum(lengths + 1) - 1
    return offsets[:n].copy(), LineBlock(out.tobytes(), ends - lengths, ends), used


def _login_file() -> str | None:
    """A kcat configuration file (mode 0600, removed at exit) with the Kafka security settings; None without."""
    from .kafka_security import kafka_security

    props = kafka_security().librdkafka()
    if props == {"security.protocol": "PLAINTEXT"}:
        return None
    props = {("sasl.mechanisms" if k == "sasl.mechanism" else k): v for k, v in props.items()}
    fd, path = tempfile.mkstemp(prefix="inferwatch-kcat-", suffix=".conf")  # created 0600
    with os.fdopen(fd, "w") as f:
        f.write("".join(f"{k}={v}\n" for k, v in props.items()))
    atexit.register(_remove, path)
    return path


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


class KcatRangeReader:
    """(offsets, values) chunks covering [lo, hi) of one partition, read by ``kcat``.

    Same interface as :class:`~streams.kafka_reader.RangeReader`: the child
    starts at construction; iterate once; ``close`` stops it.
    """

    def __init__(self, bootstrap: str, topic: str, partition: int, lo: int, hi: int, chunk: int) -> None:
        self.name, self.hi, self.chunk = f"{topic}:{partition}", hi, chunk
        self.errors = tempfile.TemporaryFile()
        login = _login_file()  # credentials in a file only this user reads, never on kcat's command line
        # kcat writes through stdio, 4 kB at a time into a pipe: stdbuf (coreutils) gives it a larger buffer
        buffered = ["stdbuf", f"-o{READ_BYTES}"] if shutil.which("stdbuf") else []
        self.child = subprocess.Popen(
            [*buffered, "kcat", *(["-F", login] if login else []), "-C", "-q", "-e", "-b", bootstrap, "-t", topic,
             "-p", str(partition), "-o", str(lo),
             "-c", str(hi - lo), "-f", "%o %S\n%s\n", *QUEUE_SETTINGS],
            stdout=subprocess.PIPE, stderr=self.errors)
        try:
            fcntl.fcntl(self.child.stdout.fileno(), fcntl.F_SETPIPE_SZ, 1 << 20)
        except OSError:
            pass
        # A thread reads, parses and packs (the compiled passes release the GIL) while chunks are monitored
        self.frames: queue.Queue = queue.Queue(AHEAD)
        self.stopping = threading.Event()
        self.reader = threading.Thread(target=self._run, name=f"kcat {self.name}", daemon=True)
        self.reader.start()

    def __iter__(self) -> Iterator[tuple[np.ndarray, LineBlock]]:
        try:
            while (item := self.frames.get()) is not None:
                if isinstance(item, Exception):
                    raise item
                yield item
        finally:
            self.close()

    def _run(self) -> None:
        try:
            for frame in self._chunks():
                if not self._put(frame):
                    return
            self._put(None)
        except Exception as exc:  # noqa: BLE001 - raised in the iterating thread
            self._put(exc)

    def _put(self, item) -> bool:
        while not self.stopping.is_set():
            try:
                self.frames.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _chunks(self) -> Iterator[tuple[np.ndarray, LineBlock]]:
        fd, pending = self.child.stdout.fileno(), b""
        parts: list[tuple[np.ndarray, LineBlock]] = []
        have, finished, eof = 0, False, False
        while not finished:
            reads, size = [pending], len(pending)
            while size < READ_BYTES and not eof:
                reads.append(os.read(fd, READ_BYTES))
                size += len(reads[-1])
                eof = not reads[-1]
            pending = b"".join(reads)  # immutable: numpy may view it for as long as it likes
            offsets, block, used = parse_records(np.frombuffer(pending, dtype=np.uint8), self.chunk - have)
            pending = pending[used:]
            if len(offsets) and offsets[-1] >= self.hi:  # past the range: the rest is not ours
                keep = int(np.searchsorted(offsets, self.hi))
                offsets, block = offsets[:keep], _head(block, keep)
                finished = True
            if len(offsets):
                parts.append((offsets, block))
                have += len(offsets)
            if eof and not len(offsets):
                if self.child.wait() != 0 or pending:
                    self.errors.seek(0)
                    reason = self.errors.read().decode(errors="replace").strip()[-2000:]
                    raise RuntimeError(f"reading {self.name} with kcat failed: {reason or 'the output ended mid-record'}")
                finished = True
            if parts and (have >= self.chunk or finished):
                yield _join(parts)
                parts, have = [], 0

    def close(self) -> None:
        self.stopping.set()
        if self.child.poll() is None:
            self.child.kill()
        self.child.wait()
        self.reader.join()
        self.child.stdout.close()
        self.errors.close()


def _head(block: LineBlock, n: int) -> LineBlock:
    end = int(block.ends[n - 1]) if n else 0
    return LineBlock(block.buffer[:end], block.starts[:n], block.ends[:n])


def _join(parts: list[tuple[np.ndarray, LineBlock]]) -> tuple[np.ndarray, LineBlock]:
    if len(parts) == 1:
        return parts[0]
    shifts = np.cumsum([0] + [len(b.buffer) + 1 for _, b in parts[:-1]])
    return (np.concatenate([o for o, _ in parts]),
            LineBlock(b"\n".join(b.buffer for _, b in parts),
                      np.concatenate([b.starts + s for (_, b), s in zip(parts, shifts)]),
                      np.concatenate([b.ends + s for (_, b), s in zip(parts, shifts)])))
