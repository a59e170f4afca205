"""File replay: the embedded default. JSON lines through the pipeline step, alerts out.

A thin driver over :class:`inferwatch.streams.pipeline.Pipeline`: it reads
chunks of lines, steps them, and writes what each step returns. Chunks are
decoded and monitored in turn: polars already spreads parsing
over every core, and a second stage in a thread only fought it for them.
Output does not depend on the chunk size: the core sees each model's
events in file order whatever the cut.
"""

from __future__ import annotations

import gzip
import itertools
import mmap
import os
import stat
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import msgspec
import numpy as np
import orjson

from ..detectors.config import MonitorConfig
from ..detectors.types import Alert
from .labels import LabelFeed, PerformanceWatch
from .lines import BOM, LineBlock
from .decode import unwatched_fields
from .pipeline import SCHEMA_SAMPLE_LINES, Observer, Pipeline, StepResult
from .runtime import single_threaded_blas

__all__ = ["ReplaySummary", "finish", "reason_of", "read_chunks", "read_event_chunks", "open_events", "sample_lines", "reference_blocks",
           "buffered_build", "replay_file", "write_step"]

READ_BLOCK = 8 << 20


@dataclass
class ReplaySummary:
    events: int = 0
    dead_letters: int = 0
    blank_lines: int = 0
    firing: int = 0
    resolved: int = 0
    incidents: set[str] = field(default_factory=set)  # ids of the incidents of the alerts written
    models: set[str] = field(default_factory=set)
    seconds: float = 0.0
    reasons: Counter = field(default_factory=Counter)  # dead letters by reason (the error, details cut)
    reference_events: int | None = None  # valid reference events used (None: no reference)
    reference_cut: dict = field(default_factory=dict)  # model -> (events its baseline took, events the reference held)
    reference_models: set[str] = field(default_factory=set)
    never_seen: list[str] = field(default_factory=list)  # models and columns the config names that never came
    labels: list[str] = field(default_factory=list)  # with labels: the join's counts and the estimates' calibration
    unwatched: dict[str, dict[str, str]] = field(default_factory=dict)  # per model: fields that are objects or arrays
    unready: dict[str, tuple[int, int]] = field(default_factory=dict)  # model -> (events, warm-up): no baseline yet

    def problems(self) -> list[str]:
        """What makes this run's result worthless, worst first (an empty list: none)."""
        out = ["no valid event was monitored"] if self.events == 0 else []
        if self.reference_events == 0:
            out.append("the reference held no valid event")
        elif self.reference_events and self.models and not (self.reference_models & self.models):
            out.append(f"the reference is of {_names(self.reference_models)}, the events of {_names(self.models)}: "
                       "nothing was compared to it")
        if self.dead_letters > self.events:
            out.append(f"most messages were dead letters ({self.dead_letters:,} of {self.dead_letters + self.events:,})")
        if self.events and self.models and self.models <= set(self.unready):
            out.append("no model's baseline completed: nothing was watched for changes")
        return out

    def top_reasons(self, k: int = 3) -> str:
        return "; ".join(f"{n:,} x {why}" for why, n in self.reasons.most_common(k))

    @property
    def alerts(self) -> int:
        return self.firing + self.resolved

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict:
        return {
            "events": self.events, "dead_letters": self.dead_letters, "blank_lines": self.blank_lines,
            "alerts": self.alerts, "firing": self.firing, "resolved": self.resolved, "incidents": len(self.incidents),
            "models": sorted(self.models), "seconds": round(self.seconds, 3),
            "events_per_second": round(self.rate),
            "dead_letter_reasons": dict(self.reasons.most_common(10)),
            "never_seen": self.never_seen,
            "baseline_not_complete": {m: events for m, (events, _) in self.unready.items()},
        }


def _names(models: set[str]) -> str:
    shown = sorted(models)[:3]
    more = f" and {len(models) - 3} more" if len(models) > 3 else ""
    return "model " + ", ".join(repr(m) for m in shown) + more


def reason_of(error: str) -> str:
    """A dead letter's reason without its details (a parser's position), for counting."""
    return error.split(" (")[0][:160]


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


def open_events(path: str | Path) -> IO[bytes]:
    """A file of events to read: ``-`` is standard input; gzip is read transparently (by its magic bytes)."""
    f = sys.stdin.buffer if str(path) == "-" else open(path, "rb")
    if f.peek(2)[:2] == b"\x1f\x8b":
        return gzip.open(f, "rb")  # type: ignore[return-value]
    return f


def read_event_chunks(path: str | Path, lines_per_chunk: int) -> Iterator[tuple[int, LineBlock, int]]:
    """:func:`read_chunks` for any source :func:`open_events` takes (bytes done count the compressed input); a
    byte order mark at the start (a Windows export) is not part of the first line."""
    for first, block, done in _event_chunks(path, lines_per_chunk):
        if first == 0 and len(block) and block[0].startswith(BOM):
            starts = block.starts.copy()
            starts[0] += len(BOM)
            block = LineBlock(block.buffer, starts, block.ends)
        yield first, block, done


def _event_chunks(path: str | Path, lines_per_chunk: int) -> Iterator[tuple[int, LineBlock, int]]:
    if str(path) != "-" and stat.S_ISREG(os.stat(path).st_mode) and not _is_gzip(path):
        yield from read_chunks(path, lines_per_chunk)  # a regular file is mapped; a pipe is read once, below
        return
    with open_events(path) as f:
        raw = getattr(f, "fileobj", None)  # a gzip file's compressed input: its position is the progress
        seekable = raw is not None and raw.seekable()
        for first, block, done in _read_chunks(f, lines_per_chunk):
            yield first, block, raw.tell() if seekable else done


def _is_gzip(path: str | Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def sample_lines(path: str | Path, n: int = SCHEMA_SAMPLE_LINES) -> list[bytes]:
    """The first ``n`` non-blank lines of a file of events."""
    out: list[bytes] = []
    for _, chunk, _ in read_event_chunks(path, n):
        out.extend(line for line in chunk if line.strip())
        if len(out) >= n:
            break
    return out[:n]


def reference_blocks(path: str | Path | None, lines_per_chunk: int = 65536) -> list[LineBlock] | None:
    """A reference file's lines in blocks, for :meth:`Pipeline.build` (None without one)."""
    if path is None:
        return None
    return [chunk for _, chunk, _ in read_event_chunks(path, lines_per_chunk)]


def buffered_build(config: MonitorConfig, chunks: Iterable, reference: str | Path | None,
                   lines_of: Callable = lambda chunk: chunk, summary: ReplaySummary | None = None
                   ) -> tuple[Pipeline, Iterator]:
    """The pipeline built from the head of ``chunks`` (its first ``SCHEMA_SAMPLE_LINES`` non-blank lines),
    and every chunk again from the first: a stream read once (standard input, a topic) is sampled as it goes.
    ``summary``: told which fields of the sample are objects or arrays (not watched)."""
    chunks = iter(chunks)
    head, sample = [], []
    for chunk in chunks:
        head.append(chunk)
        sample += [line for line in lines_of(chunk) if line.strip()]
        if len(sample) >= SCHEMA_SAMPLE_LINES:
            break
    pipe = Pipeline.build(config, sample, reference_blocks(reference))
    if summary is not None:
        summary.unwatched = unwatched_fields(sample[:SCHEMA_SAMPLE_LINES])
    return pipe, itertools.chain(head, chunks)


def replay_file(
    events: str | Path,
    config: MonitorConfig,
    alerts_out: IO[bytes],
    reference: str | Path | None = None,
    dead_letters_out: IO[bytes] | None = None,
    progress: Callable[[int, int | None], None] | None = None,
    outputs_out: IO[bytes] | None = None,
    observer: Observer | None = None,
    lines_per_chunk: int | None = None,
    labels: str | Path | None = None,
) -> ReplaySummary:
    """Run the core over a JSONL file (``-``: standard input; gzip read transparently) with in-memory state.

    Writes alerts (and guard decisions, and dead letters) as JSON lines;
    ``position`` in an alert is the 0-based line index. ``labels``: a labels
    file, joined to the predictions as the events' time reaches the labels'
    (:mod:`.labels`).
    """
    started = time.perf_counter()
    summary = ReplaySummary()
    source_name = str(events)
    total = Path(events).stat().st_size if source_name != "-" else None
    chunks = read_event_chunks(events, lines_per_chunk or config.batch_size)
    pipe, chunks = buffered_build(config, chunks, reference, lines_of=lambda c: c[1], summary=summary)
    if labels is not None:
        pipe.performance = PerformanceWatch(config, LabelFeed.from_file(labels))
        # reference events may carry their label inline: the performance's baselines
        pipe.performance.fit_reference([line for block in reference_blocks(reference) or [] for line in block])
    chunk = lines_per_chunk or config.batch_size
    with single_threaded_blas():
        for first, lines, done in merged_chunks(chunks, lambda: pipe.step_lines(chunk)):
            result = pipe.step(lines, first, decisions=outputs_out is not None, observer=observer)
            write_step(result, summary, lambda i, _: i, alerts_out, outputs_out, dead_letters_out,
                       lambda i: {"file": source_name, "line": i})
            if progress is not None:
                progress(done, total)
        if pipe.performance is not None:
            write_step(pipe.finish_labels(), summary, lambda i, _: i, alerts_out)
            summary.labels = pipe.performance.summary()
    finish(summary, pipe, started)
    return summary


def finish(summary: ReplaySummary, pipe: Pipeline, started: float) -> None:
    """What the pipeline knows at the end: the reference it used, and what the config named but never came."""
    summary.seconds = time.perf_counter() - started
    summary.reference_events = pipe.reference_events
    summary.reference_models = set(pipe.reference_models)
    summary.reference_cut = dict(pipe.reference_cut)
    summary.never_seen = pipe.never_seen()
    summary.unready = {name: (mon.events, pipe.config.for_model(name).warmup_events)
                       for name, mon in sorted(pipe.monitor.models.items()) if not mon.calibrated}


def merged_chunks(chunks: Iterable[tuple[int, LineBlock, int]],
                  want: Callable[[], int]) -> Iterator[tuple[int, LineBlock, int]]:
    """Consecutive chunks joined until they hold ``want()`` lines (see :meth:`Pipeline.step_lines`)."""
    held: list[LineBlock] = []
    first, count = 0, 0
    for index, block, done in chunks:
        if not held:
            first = index
        held.append(block)
        count += len(block)
        if count >= want():
            yield first, LineBlock.concat(held), done
            held, count = [], 0
    if held:
        yield first, LineBlock.concat(held), done


def write_step(result: StepResult, summary: ReplaySummary, position: Callable[[int, Alert], object],
               alerts_out: IO[bytes], outputs_out: IO[bytes] | None = None, dead_out: IO[bytes] | None = None,
               source: Callable[[int], dict] | None = None) -> None:
    """Write one step's alerts, decisions and dead letters as JSON lines, and count them.

    ``position(index, alert)`` is an alert's ``position``; ``source(index)`` a dead letter's ``source``.
    """
    summary.events += result.events
    summary.blank_lines += result.blank
    summary.dead_letters += len(result.dead)
    summary.models |= result.models
    for d in result.dead:
        summary.reasons[reason_of(d.error)] += 1
    if dead_out is not None and result.dead:
        dead_out.write(b"".join(d.encoded(source(d.index)) + b"\n" for d in result.dead))
    if result.alerts:
        for _, alert in result.alerts:
            if alert.incident_id:  # (an incident's record, or an alert of one: performance has no records)
                summary.incidents.add(alert.incident_id)
            if alert.kind == "incident":
                continue
            if alert.status == "firing":
                summary.firing += 1
            else:
                summary.resolved += 1
        alerts_out.write(b"".join(orjson.dumps(a.to_record(position(i, a))) + b"\n" for i, a in result.alerts))
    if outputs_out is not None and result.decisions:
        outputs_out.write(b"".join(_JSON.encode(d) + b"\n" for _, d in result.decisions))


_JSON = msgspec.json.Encoder()
