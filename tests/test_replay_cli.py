"""``inferwatch replay`` on the bundled demo, as a user runs it."""

import base64
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

ROOT = Path(__file__).resolve().parent.parent
STREAM = ROOT / "examples" / "card_fraud_stream.jsonl"
REFERENCE = ROOT / "examples" / "card_fraud_reference.jsonl"
UNIT_BUG_LINE = 12_006  # event 12,000 of the stream, after 6 broken lines
NEW_COUNTRY_LINE = 20_010


def replay(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "inferwatch", "replay", *map(str, args)],
                          capture_output=True, cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    res = replay("--file", STREAM, "--reference", REFERENCE, "--alerts-out", out / "a.jsonl",
                 "--dead-letters-out", out / "d.jsonl")
    assert res.returncode == 0, res.stderr.decode()
    return out, res


def alerts_of(path):
    return [orjson.loads(line) for line in Path(path).read_bytes().splitlines()]


def test_demo_catches_the_unit_bug_and_the_new_country(demo):
    out, _ = demo
    alerts = alerts_of(out / "a.jsonl")
    first = {(a["feature"], a["detector"]): a for a in reversed(alerts) if a["status"] == "firing"}
    unit = first[("amount", "mean")]
    assert 0 <= unit["position"] - UNIT_BUG_LINE < 50
    new = first[("country", "new_category")]
    assert 0 <= new["position"] - NEW_COUNTRY_LINE < 1000 and "'BR'" in new["message"]
    assert {a["feature"] for a in alerts} == {"amount", "country"}, "no alert on a column that did not change"
    for a in alerts:
        assert set(a) >= {"alert_id", "status", "model", "feature", "kind", "detector", "severity", "score",
                          "threshold", "event_time", "position", "message"}
        assert a["event_time"].endswith("Z") and a["score"] >= a["threshold"]


def test_dead_letters_keep_reason_line_and_bytes(demo):
    out, res = demo
    dead = alerts_of(out / "d.jsonl")
    assert len(dead) == 15
    lines = STREAM.read_bytes().split(b"\n")
    for d in dead:
        assert d["error"] and base64.b64decode(d["raw"]) == lines[d["source"]["line"]]
    assert b"30,000 events, 15 dead letters" in res.stderr


def test_same_input_twice_gives_byte_identical_alerts(demo, tmp_path):
    out, _ = demo
    res = replay("--file", STREAM, "--reference", REFERENCE)
    assert res.returncode == 0
    assert res.stdout == (out / "a.jsonl").read_bytes()


def test_alerts_do_not_depend_on_the_batch_size(demo, tmp_path):
    out, _ = demo
    cfg = tmp_path / "small.yaml"
    cfg.write_text("batch_size: 997\n")
    res = replay("--file", STREAM, "--reference", REFERENCE, "--config", cfg)
    assert res.stdout == (out / "a.jsonl").read_bytes()


def test_without_reference_the_warmup_is_the_baseline():
    res = replay("--file", STREAM)
    assert res.returncode == 0, res.stderr.decode()
    alerts = [orjson.loads(x) for x in res.stdout.splitlines()]
    assert any(a["feature"] == "amount" and 0 <= a["position"] - UNIT_BUG_LINE < 50 for a in alerts)


def test_bad_config_fails_before_reading_events(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("default:\n  bins: 1\n")
    res = replay("--file", STREAM, "--config", cfg)
    assert res.returncode == 2
    assert b"default.bins" in res.stderr and res.stdout == b""
