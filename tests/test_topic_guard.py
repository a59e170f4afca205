"""Guard from topic to topic on real Kafka: one decision per event, same partition, same order."""

from __future__ import annotations

import base64
import subprocess
import sys

import orjson
import pytest
import yaml
from test_http_guard import ALL_RULES, crafted_events
from test_worker import monitor_to_end, replay_alerts

from inferwatch.detectors.config import MonitorConfig
from inferwatch.streams.guard import Guard, Rejection
from inferwatch.testing.services import (
    ROOT,
    create_topic,
    kcat_consume,
    kcat_consume_partitions,
    kcat_produce,
    listen_port,
    unique,
    wait_until,
)

pytestmark = pytest.mark.integration
DEMO = ROOT / "examples" / "card_fraud_stream.jsonl"
GARBAGE = [b"\x00\xff not json", b'{"event_id":"g","model":"card-fraud","timestamp":"t","features":{}}',
           b'{"event_id":"h","model":"card-fraud","timestamp":"2026-11-01T00:00:00Z","features":{"amount":"x"}}']


def test_topic_guard_keeps_partition_and_order_and_equals_in_process_and_http(services, tmp_path):
    bootstrap = services["KAFKA_BOOTSTRAP_SERVERS"]
    lines = [x for x in DEMO.read_bytes().splitlines()[:3000] if x.strip()]
    lines = lines[:1000] + GARBAGE + [orjson.dumps(e) for e in crafted_events()] + lines[1000:]
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(lines) + b"\n")
    source = unique("guard-in")
    create_topic(bootstrap, source, 4)
    kcat_produce(bootstrap, source, events, keyed_by="event_id")
    config = tmp_path / "rules.yaml"
    config.write_text(yaml.safe_dump(ALL_RULES))
    target, dead = f"{source}-out", f"{source}-dead"
    port = listen_port()
    proc = subprocess.Popen([sys.executable, "-m", "inferwatch", "guard", "--config", str(config),
                             "--from-topic", source, "--to-topic", target, "--dead-letter-topic", dead,
                             "--app-id", unique("guard"), "--web-port", str(listen_port()),
                             "--bootstrap-servers", bootstrap,
                             "--http", f"127.0.0.1:{port}"], cwd=ROOT,
                            stdout=open(tmp_path / "guard.log", "wb"), stderr=subprocess.STDOUT)
    guard = Guard(MonitorConfig.model_validate(ALL_RULES))
    expected = {p: [(v, guard.check_batch([v])[0].to_dict()) for v in values]
                for p, values in kcat_consume_partitions(bootstrap, source).items()}
    n_valid = sum(1 for items in expected.values() for _, d in items if "error" not in d)
    invalid = sorted(v for items in expected.values() for v, d in items if "error" in d)
    assert set(GARBAGE) <= set(invalid)
    try:
        def done():
            assert proc.poll() is None, (tmp_path / "guard.log").read_text()
            return len(kcat_consume(bootstrap, target)) >= n_valid and len(kcat_consume(bootstrap, dead)) >= len(invalid)

        wait_until(done, 180, "every decision and dead letter")
        import urllib.request

        event = crafted_events()[5]
        req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/guard", data=orjson.dumps(event), method="POST")
        with urllib.request.urlopen(req, timeout=10) as r:
            over_http = orjson.loads(r.read())
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    assert over_http == guard.check(event).to_dict() and over_http["action"] == "fallback"
    decided = kcat_consume_partitions(bootstrap, target)
    assert len(expected) == 4
    for p, items in expected.items():
        want = [d for _, d in items if "error" not in d]
        assert [orjson.loads(v) for v in decided.get(p, [])] == want, f"partition {p}"
    letters = [orjson.loads(m) for m in kcat_consume(bootstrap, dead)]
    assert sorted(base64.b64decode(d["raw"]) for d in letters) == invalid
    for d in letters:
        assert d["source"]["topic"] == source and d["error"]
    actions = {orjson.loads(v)["action"] for vs in decided.values() for v in vs}
    assert actions == {"pass", "flag", "fix", "fallback", "block"}


def test_worker_publishes_each_decision_and_guardrail_alerts_in_the_same_pass(services, tmp_path):
    bootstrap = services["KAFKA_BOOTSTRAP_SERVERS"]
    rules = {"default": {"columns": {"amount": {"type": "numeric"}},
                         "rules": [{"kind": "range", "field": "amount", "max": 5000, "action": "flag"}]}}
    config = tmp_path / "rules.yaml"
    config.write_text(yaml.safe_dump(rules))
    topic, _ = monitor_to_end(services, DEMO, tmp_path, "guarded", config)
    guard = Guard(MonitorConfig.model_validate(rules))
    want = [d.to_dict() for d in guard.check_batch(DEMO.read_bytes().splitlines()) if not isinstance(d, Rejection)]
    got = [orjson.loads(m) for m in kcat_consume_partitions(bootstrap, f"{topic}-outputs")[0]]
    assert len(got) == 30_000
    assert got == want
    live = [orjson.loads(m) for m in kcat_consume(bootstrap, f"{topic}-alerts")]
    clean = replay_alerts(DEMO, ["--config", str(config)])
    assert any(a["kind"] == "guardrail" for a in live)
    key = lambda alerts: sorted((a["alert_id"], a["kind"], a["feature"], a["detector"], a["status"]) for a in alerts)  # noqa: E731
    assert key(live) == key(clean)
