"""``inferwatch status``: what the live worker knows, read from Redis."""

from __future__ import annotations

from rich.console import Console, Group
from rich.table import Table

from ..detectors.config import MonitorConfig
from ..detectors.incidents import details
from ..detectors.timefmt import rfc3339
from ..errors import StateError
from .labels import PerformanceWatch
from .pipeline import PERFORMANCE_FIELD, monitor_of, never_seen
from .state_store import read_partitions

__all__ = ["collect", "render", "view"]


def collect(redis_url: str, app_id: str, model: str | None = None, bootstrap: str | None = None,
            config: MonitorConfig | None = None) -> dict:
    """What the worker's states say: per model (merged over partitions) its columns and segments, each detector
    at its partition nearest the threshold; per partition its offsets; with ``config``, what it names but no
    partition has seen."""
    partitions = read_partitions(redis_url, app_id, fields=True)
    ends = _end_offsets(bootstrap, partitions) if bootstrap else {}
    report: dict = {"models": {}, "partitions": {}, "unreadable": {}, "never_seen": [], "labels": {}}
    seen: dict = {}  # model -> its monitor in some partition (calibrated if any is)
    merged: dict[str, dict[str, object]] = {}  # model -> column -> statistics merged over partitions
    for name, stored in sorted(partitions.items()):
        if isinstance(stored, StateError):  # named and shown; every other partition is still reported
            report["unreadable"][name] = str(stored)
            continue
        state, fields = stored
        report["partitions"][name] = {
            "next_offset": state.next_offset, "events": state.events, "dead_letters": state.dead_letters,
            "lag": max(ends[name] - state.next_offset, 0) if name in ends else None,
        }
        if PERFORMANCE_FIELD in fields:
            try:
                _labels(report["labels"], name, PerformanceWatch.from_bytes(fields[PERFORMANCE_FIELD], MonitorConfig()))
            except StateError as exc:
                report["unreadable"][name] = str(exc)
        if not state.pipeline:
            continue
        try:
            monitor = monitor_of(state.pipeline, fields)
        except StateError as exc:
            report["unreadable"][name] = str(exc)
            continue
        for m, mon in sorted(monitor.models.items()):
            if m not in seen or (mon.calibrated and not seen[m].calibrated):
                seen[m] = mon
            if model and m != model:
                continue
            info = mon.status()
            entry = report["models"].setdefault(m, {"events": 0, "columns": {}, "open_alerts": [], "partitions": [],
                                                    "segments": {}, "incident": None})
            _latest_incident(entry, mon.policy.incident)
            for (tag, value), seg in sorted(mon.segment_monitors.items()):
                shown_seg = entry["segments"].setdefault(f"{tag}={value}", {"events": 0, "detectors": {}})
                shown_seg["events"] += seg.events
                for column, col in seg.columns.items():
                    for det, d in col.status()["detectors"].items():
                        _nearest(shown_seg["detectors"], f"{column}/{det}", d)
            entry["events"] += info["events"]
            entry["partitions"].append(name)
            entry["open_alerts"] += info["open_alerts"]
            stats = merged.setdefault(m, {})
            for column, col in mon.columns.items():
                stats[column] = stats[column].merged(col.stats) if column in stats else col.stats  # type: ignore[attr-defined]
                shown = entry["columns"].setdefault(column, {"kind": col.kind, "detectors": {}})
                shown["stats"] = stats[column].summary()  # type: ignore[attr-defined]
                for det, d in info["columns"][column]["detectors"].items():
                    _nearest(shown["detectors"], det, d)
    if config is not None:
        report["never_seen"] = never_seen(config, seen)
    return report


def _labels(shown: dict, partition: str, watch: PerformanceWatch) -> None:
    """A partition's label join: its counts, and per model output its performance metrics' evidence."""
    shown[partition] = {**watch.progress(), "evidence": {f"{m}/{out}/{metric}" + (f" [{seg}]" if seg else ""): ratio
                                                         for m, out, metric, seg, ratio in watch.evidence()}}


def _latest_incident(entry: dict, incident: dict) -> None:
    """Keep the model's latest incident over the partitions: id, open or not, its columns and likely cause."""
    summary = incident.get("summary")
    if not incident.get("id") or not summary:
        return
    kept = entry["incident"]
    if kept is not None and kept["last_opened"] >= incident["last"]:
        return
    said = details(summary, rfc3339(summary["opened_at"]))
    entry["incident"] = {"incident_id": incident["id"], "open": bool(incident.get("open")),
                         "last_opened": incident["last"], "columns": said["columns"], "segments": said["segments"],
                         "alerts": said["alerts"], "cause": said["cause"], "opened_at": said["opened_at"]}


def _nearest(shown: dict, name: str, d: dict) -> None:
    """Keep, of the partitions' detectors ``name``, the one nearest its threshold."""
    kept = shown.get(name)
    if kept is None or d["score"] / d["threshold"] > kept["score"] / kept["threshold"]:
        shown[name] = d


def _end_offsets(bootstrap: str, partitions) -> dict[str, int]:
    from kafka import KafkaConsumer, TopicPartition

    wanted = [TopicPartition(k.rsplit(":", 1)[0], int(k.rsplit(":", 1)[1])) for k in partitions
              if not isinstance(partitions[k], StateError)]
    from .kafka_security import kafka_security

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, **kafka_security().kafka_python())
    try:
        return {f"{tp.topic}:{tp.partition}": off for tp, off in consumer.end_offsets(wanted).items()}
    finally:
        consumer.close()


def _stats(stats: dict | None) -> str:
    """A column's statistics in a few words: missing share, then median and 5-95 % range, or the top labels."""
    if not stats or not stats.get("count"):
        return ""
    missing = f"{stats['missing'] / stats['count']:.1%} missing"
    if "p50" in stats:
        if stats["p50"] is None:
            return missing
        return f"{missing}; median {stats['p50']:.4g} ({stats['p05']:.4g} to {stats['p95']:.4g})"
    top = ", ".join(f"{label} {n / stats['count']:.0%}" for label, n in (stats.get("top") or [])[:3])
    return f"{missing}; {top}" if top else missing


def render(report: dict, console: Console) -> None:
    console.print(view(report))


def view(report: dict) -> Group:
    """The report as one renderable (``status --watch`` redraws it)."""
    out: list = []
    parts = Table(title="partitions")
    for col in ("partition", "next offset", "lag", "events", "dead letters"):
        parts.add_column(col)
    for name, p in report["partitions"].items():
        parts.add_row(name, str(p["next_offset"]), "-" if p["lag"] is None else str(p["lag"]), str(p["events"]),
                      str(p["dead_letters"]))
    out.append(parts)
    if report.get("labels"):
        joins = Table(title="labels (joined to their predictions)")
        for col in ("partition", "joined", "expired", "orphaned", "unreadable", "waiting", "performance (evidence)"):
            joins.add_column(col)
        for name, j in report["labels"].items():
            said = ", ".join(f"{k} {v:.2f}" for k, v in sorted(j["evidence"].items()))
            joins.add_row(name, *(f"{j[k]:,}" for k in ("joined", "expired", "orphaned", "unreadable", "waiting")),
                          said or "-")
        out.append(joins)
    for name, problem in report.get("unreadable", {}).items():
        out.append(f"[red]unreadable state[/red] {name}: {problem}")
    for name in report.get("never_seen", []):
        out.append(f"[yellow]named in the config, never seen[/yellow]: {name}")
    for model, info in report["models"].items():
        table = Table(title=f"{model}: {info['events']:,} events, open alerts: "
                            f"{', '.join('/'.join(a) for a in info['open_alerts']) or 'none'}")
        for col in ("column", "detector", "score", "threshold", "open", "statistics"):
            table.add_column(col)
        for column, c in sorted(info["columns"].items()):
            said = _stats(c.get("stats"))
            for det, d in sorted(c["detectors"].items()):
                table.add_row(column, det, f"{d['score']:.1f}", f"{d['threshold']:.1f}", "yes" if d["open"] else "",
                              said)
                said = ""
            if said:
                table.add_row(column, "", "", "", "", said)
        for segment, seg in info.get("segments", {}).items():
            for name, d in sorted(seg["detectors"].items()):
                column, det = name.rsplit("/", 1)
                table.add_row(f"{column} [{segment}]", det, f"{d['score']:.1f}", f"{d['threshold']:.1f}",
                              "yes" if d["open"] else "", "")
        out.append(table)
        incident = info.get("incident")
        if incident:
            state = "[red]open[/red]" if incident["open"] else "resolved"
            out.append(f"incident {incident['incident_id']} ({state}, opened {incident['opened_at']}): "
                          f"{incident['alerts']} alert(s) on {', '.join(incident['columns'])}; "
                          f"likely cause: {incident['cause']}")
    return Group(*out)
