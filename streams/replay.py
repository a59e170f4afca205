"""File replay: the embedded default. JSON lines through the core, alerts out.

Chunks are decoded and monitored in turn: polars already spreads parsing
over every core, and a second stage in a thread only fought it for them.
Output does not depend on the chunk size: the core sees each model's
events in file order whatever the cut.
"""

from __future__ import annotations

import mmap
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Callable, Iterator

import numpy as np
import orjson

from detectors.config import MonitorConfig
from detectors.guard import BatchGuard
from detectors.monitor import Monitor, concat_batches
from detectors.types import Batch

from .decode import Decoded, Decoder, Schema, infer_schema
from .lines import LineBlock
from .runtime import single_threaded_blas

__all__ = ["ReplaySummary", "Guards", "read_chunks", "sample_lines", "replay_file", "load_reference", "run_core",
           "write_dead", "Observer", "prepare_core"]

SCHEMA_SAMPLE_LINES = 1000
READ_BLOCK = 8 << 20


@dataclass
class ReplaySummary:
    events: int = 0
    dead_letters: int = 0
    blank_lines: int = 0
    firing: int = 0
    resolved: int = 0
    models: set[str] = field(default_factory=set)
    seconds: float = 0.0

    @property
    def alerts(self) -> int:
        return self.firing + self.resolved

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict:
        return {
            "events": self.events, "dead_letters": self.dead_letters, "blank_lines": self.blank_lines,
            "alerts": self.alerts, "firing": self.firing, "resolved": self.resolved,
            "models": sorted(self.models), "seconds": round(self.seconds, 3),
            "events_per_second": round(self.rate),
        }


def read_chunks(path: str | Path, lines_per_chunk: int) -> Iterator[tuple[int, LineBlock, int]]:
    """Yield (index of the first line, the chunk's lines, bytes read so far); blank lines are kept.

    A chunk is one buffer with its line offsets, not a list of byte strings;
    line ends are found with numpy. A regular file is memory-mapped, so each
    byte is copied once, into its chunk; anything else (a pipe) is read block
    by block.
    """
    with open(path, "rb") as f:
        try:
            mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except (ValueError, OSError):  # empty, or not a regular file
            yield from _read_chunks(f, lines_per_chunk)
            return
        with mapped:
            yield from _mapped_chunks(mapped, lines_per_chunk)


def _mapped_chunks(mapped: mmap.mmap, lines_per_chunk: int) -> Iterator[tuple[int, LineBlock, int]]:
    size, index, start, scanned, released = len(mapped), 0, 0, 0, 0
    ends = np.empty(0, dtype=np.int64)  # newline positions not yet in a chunk
    while start < size:
        while len(ends) < lines_per_chunk and scanned < size:
            count = min(READ_BLOCK, size - scanned)
            window = np.frombuffer(mapped, dtype=np.uint8, count=count, offset=scanned)
            ends = np.concatenate([ends, np.flatnonzero(window == 10) + scanned])
            del window  # the map cannot close while a view of it is alive
            scanned += count
            if scanned == size and mapped[size - 1] != 10:
                ends = np.append(ends, size)  # the last line has no newline
        cut = ends[:lines_per_chunk]
        end = int(cut[-1])
        chunk = LineBlock(mapped[start:end], np.concatenate([[start], cut[:-1] + 1]) - start, cut - start)
        behind = end - end % mmap.PAGESIZE  # pages behind this chunk: drop them from this process (RSS stays flat)
        if behind > released:
            mapped.madvise(mmap.MADV_DONTNEED, released, behind - released)
            released = behind
        yield index, chunk, min(end + 1, size)
        index, start, ends = index + len(cut), end + 1, ends[len(cut):]


def _read_chunks(f, lines_per_chunk: int) -> Iterator[tuple[int, LineBlock, int]]:
    index, done, buffer = 0, 0, b""
    ends = np.empty(0, dtype=np.int64)  # newline positions in buffer
    while True:
        block = f.read(READ_BLOCK)
        done += len(block)
        if block:
            found = np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == 10) + len(buffer)
            ends = np.concatenate([ends, found])
            buffer += block
        elif len(buffer) > (ends[-1] + 1 if ends.size else 0):
            ends = np.append(ends, len(buffer))  # the last line has no newline
        while len(ends) >= lines_per_chunk or (not block and len(ends)):
            cut = ends[:lines_per_chunk]
            yield index, LineBlock(buffer, np.concatenate([[0], cut[:-1] + 1]), cut), done
            index += len(cut)
            consumed = int(cut[-1]) + 1
            buffer, ends = buffer[consumed:], ends[len(cut):] - consumed
        if not block:
            return


def sample_lines(path: str | Path, n: int = SCHEMA_SAMPLE_LINES) -> list[bytes]:
    out: list[bytes] = []
    for _, chunk, _ in read_chunks(path, n):
        out.extend(line for line in chunk if line.strip())
        if len(out) >= n:
            break
    return out[:n]


def load_reference(path: str | Path, decoder: Decoder, lines_per_chunk: int = 65536) -> list:
    """Decode a reference file into one batch per model (invalid lines are skipped and counted)."""
    per_model: dict[str, list] = defaultdict(list)
    for first, chunk, _ in read_chunks(path, lines_per_chunk):
        for batch in decoder.decode(chunk, first).batches:
            per_model[batch.model].append(batch)
    return [concat_batches(parts) for _, parts in sorted(per_model.items())]


def replay_file(
    events: str | Path,
    config: MonitorConfig,
    alerts_out: IO[bytes],
    reference: str | Path | None = None,
    dead_letters_out: IO[bytes] | None = None,
    progress: Callable[[int, int], None] | None = None,
    outputs_out: IO[bytes] | None = None,
    observer: Observer | None = None,
    lines_per_chunk: int | None = None,
) -> ReplaySummary:
    """Run the core over a JSONL file with in-memory state; write alerts (and guard decisions) as JSON lines."""
    started = time.perf_counter()
    decoder, guards, monitor = prepare_core(config, sample_lines(events), reference)
    summary = ReplaySummary()
    source_name = str(events)
    total = Path(events).stat().st_size
    chunks = read_chunks(events, lines_per_chunk or config.batch_size)

    with single_threaded_blas():
        for first, lines, done in chunks:
            decoded = decoder.decode(lines, first)
            summary.blank_lines += decoded.blank
            write_dead(decoded, dead_letters_out, lambda i: {"file": source_name, "line": i}, summary)
            run_core(monitor, decoded, alerts_out, summary, lambda i: i, guards, outputs_out, observer)
            if progress is not None:
                progress(done, total)
    summary.seconds = time.perf_counter() - started
    return summary


def prepare_core(config: MonitorConfig, sample: list[bytes], reference: str | Path | None = None):
    """(decoder, guards, monitor) for a replay: schema from the sample (and reference), baseline fitted."""
    tags = tuple(sorted({t for m in [*config.models.values(), config.default] for t in m.segments}))
    sample = [line for line in sample if line and line.strip()] + (sample_lines(reference) if reference else [])
    schema: Schema = infer_schema(sample, config, tags)
    decoder = Decoder(schema, config.limits)
    monitor = Monitor(config)
    if reference is not None:
        for batch in load_reference(reference, decoder):
            monitor.fit_reference(batch)
    return decoder, Guards(config, schema), monitor


class Guards:
    """A :class:`BatchGuard` per model, compiled against the stream's schema at start-up."""

    def __init__(self, config: MonitorConfig, schema: Schema) -> None:
        self.config = config
        self.kinds = {name: ("numeric" if kind == "numeric" else "categorical")
                      for name, kind in _schema_kinds(schema).items()}
        self.guards: dict[str, BatchGuard] = {}
        for model, mc in [*config.models.items(), ("default", config.default)]:
            try:
                self.guards[model] = BatchGuard(mc.rules, self.kinds)
            except ValueError as exc:
                raise ValueError(f"models.{model}.{exc}" if model != "default" else f"default.{exc}") from None

    def for_model(self, model: str) -> BatchGuard:
        return self.guards.get(model) or self.guards["default"]


def _schema_kinds(schema: Schema) -> dict[str, str]:
    kinds = dict(schema.features)
    if isinstance(schema.prediction, dict):
        kinds.update({f"prediction.{k}": v for k, v in schema.prediction.items()})
    elif schema.prediction is not None:
        kinds["prediction"] = schema.prediction
    return kinds


def write_dead(decoded: Decoded, out: IO[bytes] | None, source: Callable[[int], dict], summary: ReplaySummary) -> None:
    """Dead letters as JSON lines; ``source(index)`` says where input ``index`` came from."""
    summary.dead_letters += len(decoded.dead)
    if out is not None and decoded.dead:
        out.write(b"".join(orjson.dumps(d.record(source(d.index))) + b"\n" for d in decoded.dead))


Observer = Callable[[Batch, "np.ndarray | None", Monitor, list], None]


def run_core(monitor: Monitor, decoded: Decoded, out: IO[bytes], summary: ReplaySummary,
             position: Callable[[int], object], guards: Guards | None = None,
             outputs_out: IO[bytes] | None = None, observer: Observer | None = None) -> None:
    """Guard and monitor decoded batches in one pass; write alerts (and decisions) in input order.

    ``position(index)`` says where input ``index`` came from. Rule violations
    are computed once per batch: they make the decisions and feed the
    guardrail alerts. ``observer(batch, hits, monitor, alerts)`` sees each
    batch after the core (backtests record their traces with it).
    """
    records, decisions = [], []
    for batch, rows in zip(decoded.batches, decoded.rows):
        summary.events += len(batch)
        summary.models.add(batch.model)
        guard = guards.for_model(batch.model) if guards is not None else None
        hits = guard.violations(batch) if guard is not None and guard.rules else None
        if outputs_out is not None and guard is not None:
            decisions.extend(zip(rows.tolist(), map(orjson.dumps, guard.decide(batch, hits))))
        alerts = monitor.process(batch, hits)
        if observer is not None:
            observer(batch, hits, monitor, alerts)
        for alert in alerts:
            line = int(rows[alert.row])
            records.append((line, alert.feature or "", alert.detector, alert.to_record(position(line))))
            if alert.status == "firing":
                summary.firing += 1
            else:
                summary.resolved += 1
    records.sort(key=lambda r: r[:3])
    if records:
        out.write(b"".join(orjson.dumps(r[3]) + b"\n" for r in records))
    if decisions:
        decisions.sort(key=lambda r: r[0])
        outputs_out.write(b"".join(r[1] + b"\n" for r in decisions))
