"""The backtest report: one self-contained HTML file (plotly.js inlined, no network).

Per config, per model, per column: each detector's evidence over its
threshold through time with alert episodes shaded, the distribution (or
category mix) before and after the column's first alert, and the missing
rate through time; then tables of alerts and of guard decisions, and the
comparison of configs. ``document.body.dataset.plots`` counts the plots
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


_COLORS = {"before": "#4c78a8", "after": "#f58518"}


def _dates(seconds) -> list[str]:
    return np.datetime_as_string((np.asarray(seconds, dtype=float) * 1e3).astype("datetime64[ms]"), unit="ms").tolist()


def _epoch(rfc3339: str) -> float:
    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


def _episodes(alerts: list[dict], model: str, column: str, end: float) -> list[tuple[float, float, str]]:
    """(start, end, detector) of each alert episode on a column."""
    out, open_at = [], {}
    for a in alerts:
        if a["model"] != model or (a["feature"] or "") != column:
            continue
        t = _epoch(a["event_time"])
        if a["status"] == "firing" and a["detector"] not in open_at:
            open_at[a["detector"]] = t
        elif a["status"] == "resolved" and a["detector"] in open_at:
            out.append((open_at.pop(a["detector"]), t, a["detector"]))
    out += [(t, end, det) for det, t in open_at.items()]
    return out


def _column_figure(name: str, ct: ColumnTrace, trace: ModelTrace, alerts: list[dict], model: str) -> go.Figure:
    times = np.asarray(trace.times)
    x = _dates(times)
    episodes = _episodes(alerts, model, name, float(times[-1]))
    split = min((start for start, _, _ in episodes), default=float(np.median(times)))
    split_label = "first alert" if episodes else "mid-stream"
    fig = make_subplots(rows=1, cols=3, column_widths=[0.45, 0.3, 0.25], subplot_titles=(
        "evidence / threshold (alert at 1)", f"before vs after the {split_label}", "missing rate"))
    for det, series in sorted(ct.ratio.items()):
        fig.add_trace(go.Scatter(x=x, y=series, mode="lines", name=det, legendgroup=det), row=1, col=1)
    fig.add_hline(y=1.0, line_dash="dash", line_color="#b00020", row=1, col=1)
    for start, end, det in episodes:
        fig.add_vrect(x0=_dates([start])[0], x1=_dates([end])[0], fillcolor="#b00020", opacity=0.12,
                      line_width=0, row=1, col=1, annotation_text=det, annotation_position="top left")
    if ct.kind == "numeric" and ct.sample_values:
        values, at = np.concatenate(ct.sample_values), np.concatenate(ct.sample_times)
        before, after = values[at < split], values[at >= split]
        wide = len(values) and values.min() > 0 and np.percentile(values, 99) > 100 * np.percentile(values, 1)
        for part, label in ((before, "before"), (after, "after")):
            if len(part):
                fig.add_trace(go.Histogram(x=np.log10(part) if wide else part, name=label, opacity=0.6,
                                           histnorm="probability", nbinsx=40, legendgroup=label,
                                           marker_color=_COLORS[label]), row=1, col=2)
        fig.update_layout(barmode="overlay")
        if wide:
            fig.update_xaxes(title_text="log10 value", row=1, col=2)
    elif ct.counts:
        before, after = {}, {}
        for t, counts in zip(times, ct.counts):
            target = before if t < split else after
            for label, k in counts.items():
                target[label] = target.get(label, 0) + k
        labels = sorted(set(before) | set(after), key=lambda k: -(before.get(k, 0) + after.get(k, 0)))[:12]
        for part, label in ((before, "before"), (after, "after")):
            total = max(sum(part.values()), 1)
            fig.add_trace(go.Bar(x=labels, y=[part.get(k, 0) / total for k in labels], name=label,
                                 legendgroup=label, marker_color=_COLORS[label]), row=1, col=2)
    fig.add_trace(go.Scatter(x=x, y=ct.missing, mode="lines", name="missing", line_color="#555",
                             showlegend=False), row=1, col=3)
    fig.update_yaxes(range=[0, max(0.05, 1.2 * max(ct.missing, default=0.0))], row=1, col=3)
    fig.update_layout(title=f"{model} · {name} ({ct.kind})", height=340, margin=dict(l=40, r=20, t=60, b=40))
    return fig


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
    """Write the report; return the number of plots in it."""
    parts: list[str] = []
    plots = 0
    rows = difference_rows(runs)
    classes = ["differs" if len(set(cells)) > 1 else "" for _, cells in rows]
    parts.append("<h2>Configs compared</h2>" + _table(["", *[r.name for r in runs]],
                                                      [[what, *cells] for what, cells in rows], classes))
    for run in runs:
        parts.append(f"<h2>{html.escape(run.name)}</h2>")
        for model, trace in sorted(run.models.items()):
            parts.append(f"<h3>model {html.escape(model)}</h3>")
            for name, ct in sorted(trace.columns.items()):
                fig = _column_figure(name, ct, trace, run.alerts, model)
                parts.append(fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"plot-{plots}",
                                         config={"displaylogo": False}))
                plots += 1
            if trace.rule_labels:
                parts.append("<h3>guard decisions</h3>" + _table(
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
