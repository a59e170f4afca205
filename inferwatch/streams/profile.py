"""``inferwatch profile``: what inferwatch would watch in a stream, and a starting config.

The baseline is the reference when given, else each model's first
``warmup_events`` events of the stream (as ``replay`` would take them). For
each model, every column's kind, role, detectors and largest threshold; a
config written by :func:`starting_config` is accepted by ``replay`` and
``worker`` unchanged and pins what was inferred (kinds, roles, detectors).
"""

from __future__ import annotations

from pathlib import Path

from ..detectors.config import MonitorConfig
from ..detectors.monitor import ModelMonitor
from .pipeline import Pipeline
from .replay import buffered_build, read_event_chunks

__all__ = ["profile_file", "describe", "starting_config"]


def profile_file(events: str | Path, config: MonitorConfig, reference: str | Path | None = None) -> Pipeline:
    """The pipeline after its baselines: from ``reference``, or the stream's first events of each model."""
    chunks = read_event_chunks(events, config.batch_size)
    pipe, chunks = buffered_build(config, chunks, reference, lines_of=lambda c: c[1])
    for first, lines, _ in chunks:
        pipe.step(lines, first)
        if all(m.calibrated for m in pipe.monitor.models.values()) and pipe.monitor.models:
            break
    return pipe


def _kinds(pipe: Pipeline, model: str) -> dict[str, str]:
    own = pipe.own.get(model)
    return (own[0] if own is not None else pipe.schema).kinds()


def describe(pipe: Pipeline, unwatched: dict[str, dict[str, str]] | None = None) -> list[str]:
    """Lines of text: per model, its columns with kind, role, detectors and largest threshold; and the
    fields left alone (``unwatched``, see :func:`.decode.unwatched_fields`)."""
    out = []
    for name, mon in sorted(pipe.monitor.models.items()):
        state = "baseline taken" if mon.calibrated else f"baseline not complete ({mon.events} events)"
        out.append(f"model {name!r}: {state}")
        left = (unwatched or {}).get(name)
        if left:
            out.append("  not watched (objects and arrays): " + ", ".join(f"{k} ({v})" for k, v in left.items()))
        kinds = _kinds(pipe, name)
        for column, col in sorted(mon.columns.items()):
            detectors = col.lanes.detector_names() if col.lanes is not None else []
            top = f"{col.lanes.thresholds.max():.1f}" if col.lanes is not None else "-"
            kind = kinds.get(column, col.kind)
            role = mon.roles.get(column, col.kind)
            role = "boolean" if kind == "boolean" and role == "categorical" else role
            out.append(f"  {column:28} {kind:11} {role:11} {', '.join(detectors) or '(none)':40} h<={top}")
        for seg in sorted(mon.segment_monitors):
            out.append(f"  segment {seg[0]}={seg[1]}: {len(mon.segment_monitors[seg].columns)} columns")
    return out


def starting_config(pipe: Pipeline) -> dict:
    """A ``monitor.yaml`` (as a mapping) that pins what the profile inferred, per model."""
    models: dict = {}
    for name, mon in sorted(pipe.monitor.models.items()):
        kinds = _kinds(pipe, name)
        columns: dict = {}
        for column, col in sorted(mon.columns.items()):
            if column not in kinds:  # derived (a text's length, a time's age): it follows its column
                continue
            entry: dict = {"type": kinds[column]}
            role = mon.roles.get(column)
            if role in ("identifier", "text", "timestamp", "numeric_text", "code"):
                entry["role"] = role
            elif col.lanes is not None:
                entry["detectors"] = col.lanes.detector_names()
            columns[column] = entry
        models[name] = _model_entry(mon, columns)
    return {"models": models}


def _model_entry(mon: ModelMonitor, columns: dict) -> dict:
    entry: dict = {"columns": columns}
    if mon.config.segments:
        entry["segments"] = list(mon.config.segments)
    return entry
