"""The backtest report: one self-contained HTML file (plotly.js inlined, no network).

What changed first: per config and model, how many columns moved, in
which incidents, and their likely causes. Then the configs compared; then
per model and column (moved columns first; columns without detectors left
out): the reference's statistics against the current ones (since the
column's first alert), and one figure with every config overlaid: each
detector's evidence over its threshold with alert episodes shaded, the
reference's and the current distribution on the same bins, and the missing
share against the reference's. With labels, per model with a probability
output: the realized error rate (from the labels) against the estimated one
(from the scores alone) through time, performance alert episodes shaded.
Last, each config's guard decisions and alerts. ``document.body.dataset.plots`` counts the plots
drawn and ``dataset.errors`` collects script errors, so a headless browser
can check that the page rendered.
"""

from __future__ import annotations

import html
from datetime import datetime
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from .backtest import ColumnTrace, ConfigRun, ModelTrace, difference_rows

__all__ = ["write_report"]

_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222}
h1,h2,h3{font-weight:600} h2{border-bottom:1px solid #ccc;padding-bottom:4px;margin-top:40px}
table{border-collapse:collapse;margin:8px 0 24px} td,th{border:1px solid #ddd;padding:3px 8px;text-align:left}
th{background:#f4f4f4} .differs{background:#fff3c4} .firing{color:#b00020} .resolved{color:#0a7c2f}
"""


_COLORS = {"reference": "#4c78a8", "current": "#f58518"}


def _dates(seconds) -> list[str]:
    return np.datetime_as_string((np.asarray(seconds, dtype=float) * 1e3).astype("datetime64[ms]"), unit="ms").tolist()


def _epoch(rfc3339: str) -> float:
    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


def _episodes(alerts: list[dict], model: str, column: str, end: float) -> list[tuple[float, float, str]]:
    """(start, end, detector) of each alert episode on a column."""
    out, open_at = [], {}
    for a in alerts:
        if a["model"] != model or (a["feature"] or "") != column or a["kind"] in ("incident", "performance"):
            continue
        t = _epoch(a["event_time"])
        if a["status"] == "firing" and a["detector"] not in open_at:
            open_at[a["detector"]] = t
        elif a["status"] == "resolved" and a["detector"] in open_at:
            out.append((open_at.pop(a["detector"]), t, a["detector"]))
    out += [(t, end, det) for det, t in open_at.items()]
    return out


def _clock(trace: ModelTrace) -> np.ndarray:
    """Each point's time (the median event time of its chunk: one event stamped far off moves nothing)."""
    return np.asarray(trace.times, dtype=float)


def _current(ct: ColumnTrace, trace: ModelTrace, split: float | None):
    """The column's events from the point where the stream reached ``split`` (its first alert's time; None:
    the whole stream): (numeric values, label counts, missing share)."""
    times = _clock(trace)
    after = times >= split if split is not None else np.ones(len(times), dtype=bool)
    if ct.kind == "numeric" and ct.sample_values:
        values = np.concatenate([v for keep, v in zip(after, ct.sample_values) if keep] or [np.empty(0)])
    else:
        values = np.empty(0)
    counts: dict[str, int] = {}
    for keep, point in zip(after, ct.counts):
        if keep:
            for label, k in point.items():
                counts[label] = counts.get(label, 0) + k
    missing = np.asarray(ct.missing)[after[:len(ct.missing)]]
    return values, counts, float(missing.mean()) if missing.size else float("nan")


def _stats_rows(ct: ColumnTrace, values: np.ndarray, counts: dict, missing: float) -> list[list[str]]:
    """Reference against current: missing share, then mean and quantiles, or cardinality and top labels."""
    ref_missing = ct.baseline_missing / ct.baseline_events if ct.baseline_events else float("nan")
    rows = [["missing share", f"{ref_missing:.2%}", f"{missing:.2%}"]]
    if ct.kind == "numeric":
        ref = np.concatenate(ct.baseline_values) if ct.baseline_values else np.empty(0)
        for what, f in (("mean", np.mean), ("5 %", lambda v: np.percentile(v, 5)),
                        ("median", np.median), ("95 %", lambda v: np.percentile(v, 95))):
            rows.append([what, _num(f(ref)) if ref.size else "-", _num(f(values)) if values.size else "-"])
    else:
        ref_total, cur_total = max(sum(ct.baseline_counts.values()), 1), max(sum(counts.values()), 1)
        rows.append(["distinct labels", f"{len(ct.baseline_counts):,}", f"{len(counts):,}"])
        top = sorted(set(ct.baseline_counts) | set(counts),
                     key=lambda k: -(ct.baseline_counts.get(k, 0) / ref_total + counts.get(k, 0) / cur_total))[:5]
        rows += [[f"share of {label!r}", f"{ct.baseline_counts.get(label, 0) / ref_total:.2%}",
                  f"{counts.get(label, 0) / cur_total:.2%}"] for label in top]
    return rows


def _num(x: float) -> str:
    return f"{x:,.4g}" if np.isfinite(x) else "-"


def _column_figure(name: str, model: str, runs: list[ConfigRun], split: float | None) -> go.Figure:
    """Evidence over threshold through time (every config overlaid, alert episodes shaded), the reference's
    and the current distribution on the same bins, the missing share through time against the reference's."""
    first = next(r.models[model] for r in runs if model in r.models and name in r.models[model].columns)
    ct = first.columns[name]
    x = _dates(_clock(first))
    fig = make_subplots(rows=1, cols=3, column_widths=[0.45, 0.3, 0.25], subplot_titles=(
        "evidence / threshold (alert at 1)", "reference vs current" + (" (since the first alert)" if split else ""),
        "missing share"))
    for run in runs:
        trace = run.models.get(model)
        if trace is None or name not in trace.columns:
            continue
        prefix = f"{run.name}: " if len(runs) > 1 else ""
        for det, series in sorted(trace.columns[name].ratio.items()):
            fig.add_trace(go.Scatter(x=_dates(_clock(trace)), y=series, mode="lines", name=prefix + det,
                                     legendgroup=prefix + det), row=1, col=1)
        lo, hi = float(_clock(trace).min()), float(_clock(trace).max())
        for start, end, det in _episodes(run.alerts, model, name, hi):
            start, end = min(max(start, lo), hi), min(max(end, lo), hi)  # an event stamped far off: at the edge
            fig.add_vrect(x0=_dates([start])[0], x1=_dates([end])[0], fillcolor="#b00020", opacity=0.10,
                          line_width=0, row=1, col=1, annotation_text=prefix + det, annotation_position="top left")
    fig.add_hline(y=1.0, line_dash="dash", line_color="#b00020", row=1, col=1)
    values, counts, _ = _current(ct, first, split)
    if ct.kind == "numeric":
        ref = np.concatenate(ct.baseline_values) if ct.baseline_values else np.empty(0)
        both = np.concatenate([ref, values])
        if both.size:
            wide = both.min() > 0 and np.percentile(both, 99) > 100 * np.percentile(both, 1)
            shown = [np.log10(v) if wide else v for v in (ref, values)]
            edges = np.histogram_bin_edges(np.concatenate(shown), bins=30)  # one set of bins for both
            for part, label in zip(shown, ("reference", "current")):
                if part.size:
                    share = np.histogram(part, bins=edges)[0] / part.size
                    fig.add_trace(go.Bar(x=(edges[:-1] + edges[1:]) / 2, y=share, name=label, opacity=0.6,
                                         width=np.diff(edges), legendgroup=label, marker_color=_COLORS[label]),
                                  row=1, col=2)
            fig.update_layout(barmode="overlay")
            if wide:
                fig.update_xaxes(title_text="log10 value", row=1, col=2)
    else:
        ref_total, cur_total = max(sum(ct.baseline_counts.values()), 1), max(sum(counts.values()), 1)
        labels = sorted(set(ct.baseline_counts) | set(counts),
                        key=lambda k: -(ct.baseline_counts.get(k, 0) / ref_total + counts.get(k, 0) / cur_total))[:12]
        for part, total, label in ((ct.baseline_counts, ref_total, "reference"), (counts, cur_total, "current")):
            fig.add_trace(go.Bar(x=labels, y=[part.get(k, 0) / total for k in labels], name=label,
                                 legendgroup=label, marker_color=_COLORS[label]), row=1, col=2)
    fig.add_trace(go.Scatter(x=x, y=ct.missing, mode="lines", name="missing", line_color="#555",
                             showlegend=False), row=1, col=3)
    if ct.baseline_events:
        fig.add_hline(y=ct.baseline_missing / ct.baseline_events, line_dash="dot", line_color=_COLORS["reference"],
                      row=1, col=3)
    fig.update_yaxes(range=[0, max(0.05, 1.2 * max(ct.missing, default=0.0))], row=1, col=3)
    fig.update_layout(title=f"{model} · {name} ({ct.kind})", height=340, margin=dict(l=40, r=20, t=60, b=40))
    return fig


def _segments_and_performance(runs: list[ConfigRun], model: str) -> list[str]:
    """Tables of the model's segment alerts (found by a segment's own detectors) and performance alerts (from
    labels, or the label-free estimate), per config; nothing when it has none."""
    out = []
    wanted = (("segments", lambda a: a.get("segment")), ("performance", lambda a: a["kind"] == "performance"))
    for title, keep in wanted:
        rows = [[run.name, a["status"], _segment(a.get("segment")), a["feature"] or "", a["detector"], a["event_time"],
                 a["message"]] for run in runs for a in run.alerts if a["model"] == model and keep(a)]
        if rows:
            out.append(f"<h3>{title}</h3>" + _table(["config", "status", "segment", "column", "detector", "event time",
                                                     "message"], rows, [r[1] for r in rows]))
    return out


def _performance_figure(runs: list[ConfigRun], model: str) -> go.Figure | None:
    """Realized against estimated error rate through time (with labels), performance alert episodes shaded."""
    trace = next((r.models[model].performance for r in runs if model in r.models and r.models[model].performance),
                 None)
    if trace is None:
        return None
    x = _dates(trace.times)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=x, y=trace.realized, mode="lines+markers", name="realized (labels)"))
    fig.add_trace(go.Scatter(x=x, y=trace.estimated, mode="lines", name="estimated (scores alone)",
                             line_dash="dash"))
    lo, hi = min(trace.times), max(trace.times)
    for run in runs:
        prefix = f"{run.name}: " if len(runs) > 1 else ""
        episodes: dict[str, float] = {}
        for a in run.alerts:
            if a["model"] != model or a["kind"] != "performance":
                continue
            t = min(max(_epoch(a["event_time"]), lo), hi)
            if a["status"] == "firing":
                episodes.setdefault(a["detector"], t)
            elif a["detector"] in episodes:
                start = episodes.pop(a["detector"])
                fig.add_vrect(x0=_dates([start])[0], x1=_dates([t])[0], fillcolor="#b00020", opacity=0.10,
                              line_width=0, annotation_text=prefix + a["detector"], annotation_position="top left")
        for det, start in episodes.items():
            fig.add_vrect(x0=_dates([start])[0], x1=_dates([hi])[0], fillcolor="#b00020", opacity=0.10,
                          line_width=0, annotation_text=prefix + det, annotation_position="top left")
    fig.update_layout(title=f"{model} · error rate: realized vs estimated", height=320, yaxis_title="error rate",
                      margin=dict(l=40, r=20, t=60, b=40))
    return fig


def _incidents(alerts: list[dict]) -> dict[str, dict]:
    """incident id -> its last record."""
    return {a["incident_id"]: a for a in alerts if a["kind"] == "incident"}


def headline(run: ConfigRun) -> list[str]:
    """What changed, per model, in a sentence each: how many columns moved, in how many incidents, and why."""
    out = []
    for model, trace in sorted(run.models.items()):
        moved = sorted({a["feature"] for a in run.alerts if a["model"] == model and a["status"] == "firing"
                        and a["kind"] not in ("incident", "performance") and a["feature"]})
        performance = sorted({a["detector"] for a in run.alerts if a["model"] == model and a["status"] == "firing"
                              and a["kind"] == "performance"})
        dropped = f"; its performance alerts: {', '.join(performance)}" if performance else ""
        watched = sum(1 for ct in trace.columns.values() if ct.monitored)
        incidents = [r for r in _incidents(run.alerts).values() if r["model"] == model]
        if not moved:
            out.append(f"{model}: no column moved ({watched} watched){dropped}.")
            continue
        said = f"{model}: {len(moved)} of {watched} columns moved ({', '.join(moved)})"
        if incidents:
            causes = "; ".join(f"{r['incident']['cause']} ({r['status'] == 'resolved' and 'resolved' or 'open'})"
                               for r in incidents)
            said += f" in {len(incidents)} incident(s): {causes}"
        out.append(said + dropped + ".")
    return out


def _segment(segment: dict | None) -> str:
    """``region=eu`` for an alert on one segment, empty for the whole model."""
    return ", ".join(f"{k}={v}" for k, v in sorted(segment.items())) if segment else ""


def _table(header: list[str], rows: list[list[str]], classes: list[str] | None = None) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{classes[i]}"' if classes and classes[i] else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def write_report(runs: list[ConfigRun], path: Path, title: str) -> int:
    """Write the report; return the number of plots in it.

    First what changed (a headline per config and model), then the configs
    compared, then per model and column (moved columns first; a column
    without detectors is left out) the reference against the current
    statistics and one figure with every config overlaid; then each config's
    guard decisions and alerts.
    """
    parts: list[str] = ["<h2>What changed</h2>"]
    plots = 0
    for run in runs:
        lines = "".join(f"<li>{html.escape(line)}</li>" for line in headline(run))
        named = f"<h3>{html.escape(run.name)}</h3>" if len(runs) > 1 else ""
        parts.append(named + f'<ul class="headline">{lines}</ul>')
    rows = difference_rows(runs)
    classes = ["differs" if len(set(cells)) > 1 else "" for _, cells in rows]
    parts.append("<h2>Configs compared</h2>" + _table(["", *[r.name for r in runs]],
                                                      [[what, *cells] for what, cells in rows], classes))
    firsts = [r.first_firing(drift_first=True) for r in runs]
    for model in sorted({m for r in runs for m in r.models}):
        parts.append(f"<h2>model {html.escape(model)}</h2>")
        parts += _segments_and_performance(runs, model)
        figure = _performance_figure(runs, model)
        if figure is not None:
            parts.append(figure.to_html(full_html=False, include_plotlyjs=False, div_id=f"plot-{plots}",
                                        config={"displaylogo": False}))
            plots += 1
        columns = sorted({c for r in runs if model in r.models for c, ct in r.models[model].columns.items()
                          if ct.monitored})
        split = {c: min((_epoch(f[(model, c)]["event_time"]) for f in firsts if (model, c) in f), default=None)
                 for c in columns}
        for name in sorted(columns, key=lambda c: (split[c] is None, split[c] or 0.0, c)):
            trace = next(r.models[model] for r in runs if model in r.models and name in r.models[model].columns)
            ct = trace.columns[name]
            values, counts, missing = _current(ct, trace, split[name])
            parts.append(f"<h3>{html.escape(name)}</h3>" + _table(
                ["", "reference", "current" + (" (since its first alert)" if split[name] else "")],
                _stats_rows(ct, values, counts, missing)))
            fig = _column_figure(name, model, runs, split[name])
            parts.append(fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"plot-{plots}",
                                     config={"displaylogo": False}))
            plots += 1
    for run in runs:
        parts.append(f"<h2>{html.escape(run.name)}: decisions and alerts</h2>")
        for model, trace in sorted(run.models.items()):
            if trace.rule_labels:
                parts.append(f"<h3>{html.escape(model)}: guard decisions</h3>" + _table(
                    ["rule", "action", "events violating"],
                    [[label, action, f"{int(v):,}"] for label, action, v
                     in zip(trace.rule_labels, trace.rule_actions, trace.violations)]))
                parts.append(_table(["final action", "events"], [[a, f"{k:,}"] for a, k in trace.actions.items()]))
        parts.append("<h3>alerts</h3>" + _table(
            ["status", "model", "segment", "feature", "kind", "detector", "severity", "event time", "position",
             "message"],
            [[a["status"], a["model"], _segment(a.get("segment")), a["feature"] or "", a["kind"], a["detector"],
              a["severity"], a["event_time"], a["position"], a["message"]] for a in run.alerts],
            [a["status"] for a in run.alerts]))
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>{_STYLE}</style>
<script>window.addEventListener("error", function (e) {{
  document.body.dataset.errors = (document.body.dataset.errors || "") + String(e.message) + "\\n"; }});</script>
<script>{get_plotlyjs()}</script></head>
<body><h1>{html.escape(title)}</h1>
{''.join(parts)}
<script>document.body.dataset.plots = String(document.querySelectorAll(".js-plotly-plot .main-svg").length > 0
  ? document.querySelectorAll(".js-plotly-plot").length : 0);</script>
</body></html>"""
    Path(path).write_text(page, encoding="utf-8")
    return plots
