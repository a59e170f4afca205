"""Guardrail alerts: a rule's violation rate, not each violation, opens an episode."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import orjson

from inferwatch.detectors.config import MonitorConfig, RuleConfig
from inferwatch.detectors.monitor import Monitor
from inferwatch.detectors.rule_rates import RuleRates
from inferwatch.detectors.types import Batch, NumericArray

ROOT = Path(__file__).resolve().parent.parent
RULE = RuleConfig(kind="range", field="x", max=2.0, action="fix", alert_rate=0.02)


def test_rule_at_its_tolerated_rate_never_alerts():
    rng = np.random.default_rng(3)
    rates = RuleRates([RULE], 1e9)
    hits = (rng.random(1_000_000) < 0.02)[None, :]
    assert rates.observe(hits, 0) == []


def test_rise_in_violations_fires_once_and_clears_once_whatever_the_batch_cuts():
    rng = np.random.default_rng(4)
    share = np.where(np.arange(60_000) < 20_000, 0.02, 0.2)
    share[40_000:] = 0.0
    hits = (rng.random(60_000) < share)[None, :]
    whole = [(f.action, f.row) for f in RuleRates([RULE], 1e9).observe(hits, 0)]
    assert [a for a, _ in whole] == ["fire", "clear"]
    assert 20_000 < whole[0][1] < 20_200 and whole[1][1] > 40_000
    rates, pieces, start = RuleRates([RULE], 1e9), [], 0
    for size in rng.integers(1, 5000, size=100):
        part = hits[:, start:start + size]
        pieces += [(f.action, start + f.row) for f in rates.observe(part, start)]
        start += part.shape[1]
        if start >= hits.shape[1]:
            break
    assert pieces == whole


def _batch(x, start):
    n = len(x)
    ids = np.array([f"e{start + i}" for i in range(n)], dtype=object)
    return Batch("m", ids, np.arange(start, start + n, dtype=float), {"x": NumericArray(x)})


def test_guardrail_alerts_survive_a_state_round_trip():
    cfg = MonitorConfig.model_validate({"default": {"rules": [RULE.model_dump()], "columns": {"x": {"enabled": False}}}})
    rng = np.random.default_rng(5)
    x = np.where(np.arange(40_000) < 15_000, 0.0, 3.0) * (rng.random(40_000) < 0.3)
    hits = (x > 2.0)[None, :]
    one = Monitor(cfg)
    expected = [(a.alert_id, a.row) for a in one.process(_batch(x, 0), hits)]
    assert [a for a in expected] and all(15_000 <= r for _, r in expected)
    first = Monitor(cfg)
    got = [(a.alert_id, a.row) for a in first.process(_batch(x[:16_000], 0), hits[:, :16_000])]
    second = Monitor.from_bytes(first.to_bytes(), cfg)
    got += [(a.alert_id, a.row + 16_000) for a in second.process(_batch(x[16_000:], 16_000), hits[:, 16_000:])]
    assert got == expected


def test_replay_turns_the_demo_unit_bug_into_one_guardrail_episode(tmp_path):
    config = tmp_path / "rules.yaml"
    config.write_text("default:\n  columns: {amount: {type: numeric}}\n"
                      "  rules: [{kind: range, field: amount, max: 5000, action: flag}]\n")
    out = tmp_path / "alerts.jsonl"
    subprocess.run([sys.executable, "-m", "inferwatch", "replay", "--file", "examples/card_fraud_stream.jsonl",
                    "--config", str(config), "--alerts-out", str(out)], check=True, cwd=ROOT, timeout=300,
                   capture_output=True)
    alerts = [orjson.loads(x) for x in out.read_bytes().splitlines()]
    guardrail = [a for a in alerts if a["kind"] == "guardrail"]
    assert [(a["status"], a["feature"], a["detector"]) for a in guardrail] == [("firing", "amount", "range:amount")]
    assert 12_000 < guardrail[0]["position"] < 12_200
    assert "violations rose from the tolerated 1.00%" in guardrail[0]["message"]
