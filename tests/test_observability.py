"""The Prometheus rules and the Grafana dashboard that ship in examples/: valid, tested, and about real series."""

from __future__ import annotations

import json
import re
import subprocess

from test_worker import promtool

from inferwatch.testing.services import ROOT

RULES = ROOT / "examples" / "prometheus" / "inferwatch-rules.yml"
DASHBOARD = ROOT / "examples" / "grafana" / "inferwatch-dashboard.json"


def exported() -> set[str]:
    """The series the worker exports, from its metric declarations (counters get _total, histograms _bucket)."""
    source = (ROOT / "inferwatch" / "streams" / "worker.py").read_text()
    names = set()
    for kind, name in re.findall(r'(Counter|Gauge|Histogram)\("(inferwatch_[a-z_]+)"', source):
        names |= {f"{name}_total"} if kind == "Counter" else (
            {f"{name}_bucket", f"{name}_sum", f"{name}_count"} if kind == "Histogram" else {name})
    return names


def test_the_rules_are_valid_and_their_unit_tests_pass():
    for args in (["check", "rules", str(RULES)], ["test", "rules", str(RULES.with_suffix(".test.yml"))]):
        res = subprocess.run([promtool(), *args], capture_output=True, text=True, timeout=120, cwd=RULES.parent)
        assert res.returncode == 0, res.stdout + res.stderr


def test_rules_and_dashboard_use_only_series_the_worker_exports():
    have = exported()
    assert {"inferwatch_open_alerts", "inferwatch_events_total", "inferwatch_batch_seconds_bucket"} <= have
    exprs = re.findall(r"inferwatch_[a-z_]+", RULES.read_text())
    dashboard = json.loads(DASHBOARD.read_text())
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]
        exprs += [name for t in panel["targets"] for name in re.findall(r"inferwatch_[a-z_]+", t["expr"])]
    assert set(exprs) <= have, set(exprs) - have
