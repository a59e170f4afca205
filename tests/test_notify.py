"""Alerts to a real Prometheus Alertmanager (started by scripts/services) and to a webhook, with incidents."""

from __future__ import annotations

import hashlib
import hmac
import http.server
import os
import subprocess
import sys
import threading

import orjson
import pytest

from inferwatch.errors import ConfigError, ServiceUnavailable
from inferwatch.streams.notify import AlertmanagerSink, WebhookSink, alertmanager_alert
from inferwatch.testing.services import ROOT, listen_port, wait_until

DEMO = ROOT / "examples" / "card_fraud_stream.jsonl"
REFERENCE = ROOT / "examples" / "card_fraud_reference.jsonl"
SERVICES = str(ROOT / "scripts" / "services")


class Receiver:
    """A loopback HTTP server that keeps every POST (headers, body) and answers ``status``."""

    def __init__(self, status: int = 200) -> None:
        got, self.status = [], status
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (the http.server name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                got.append((dict(self.headers), body))
                self.send_response(outer.status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.got = got
        self.server = http.server.HTTPServer(("127.0.0.1", listen_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def alertmanager(receiver, tmp_path):
    env = {**os.environ, "INFERWATCH_SERVICES_DIR": str(tmp_path / "services")}
    out = subprocess.run([SERVICES, "alertmanager-up", receiver.url], env=env, capture_output=True, text=True,
                         timeout=600, check=True).stdout
    yield out.strip().split("=", 1)[1]
    subprocess.run([SERVICES, "alertmanager-down"], env=env, timeout=120, check=True)


def replay(*extra: str, env: dict | None = None) -> list[dict]:
    res = subprocess.run([sys.executable, "-m", "inferwatch", "replay", "--file", str(DEMO), "--reference",
                          str(REFERENCE), *extra], capture_output=True, timeout=300, env={**os.environ, **(env or {})})
    assert res.returncode == 0, res.stderr.decode()
    return [orjson.loads(line) for line in res.stdout.splitlines()]


def test_alertmanager_gets_the_alerts_and_groups_them_by_incident(alertmanager, receiver):
    alerts = replay("--alertmanager-url", alertmanager)
    incidents = {a["incident_id"] for a in alerts}
    assert None not in incidents and {a["status"] for a in alerts} == {"firing", "resolved"}
    firing = [a for a in alerts if a["status"] == "firing"]
    episodes = {(a["feature"] or "", a["detector"]) for a in firing}

    def notified() -> dict:
        # an episode is one Alertmanager alert (its labels); one that fired and resolved in one post is resolved
        # (Alertmanager drops an empty label: an incident record has no feature). A group may come in several posts.
        notes = [orjson.loads(body) for _, body in list(receiver.got)]
        return {(a["labels"].get("feature", ""), a["labels"]["detector"]): a for n in notes for a in n["alerts"]}

    def cause_paged() -> bool:
        # the incident's record is in its group: the page says the likely cause beside the columns' alerts
        notes = [orjson.loads(body) for _, body in list(receiver.got)]
        return any("likely cause: one upstream column changed units: amount" in a["annotations"]["summary"]
                   for n in notes for a in n["alerts"] if a["labels"]["detector"] == "incident")

    wait_until(lambda: episodes <= set(notified()) and cause_paged(), 60, "every episode and the cause notified")
    notes = [orjson.loads(body) for _, body in list(receiver.got)]
    assert {n["groupLabels"]["incident_id"] for n in notes} == incidents  # one group per incident
    sent = notified()
    assert set(sent) == episodes
    first = sent[(firing[0]["feature"], firing[0]["detector"])]
    assert {k: first["labels"][k] for k in ("model", "feature", "detector", "kind", "incident_id")} == {
        k: firing[0][k] for k in ("model", "feature", "detector", "kind", "incident_id")}
    # the type-changed episodes that resolved are resolved in Alertmanager too (same labels, endsAt set)
    resolved = [a for a in alerts if a["status"] == "resolved"]
    wait_until(lambda: any(a["status"] == "resolved" and a["labels"]["detector"] == resolved[0]["detector"]
                           for _, b in receiver.got for a in orjson.loads(b)["alerts"]), 60, "a resolved alert")


def test_the_webhook_gets_every_alert_signed(receiver):
    alerts = replay("--webhook-url", receiver.url, env={"INFERWATCH_WEBHOOK_SECRET": "s3cret"})
    assert len(receiver.got) == 1
    headers, body = receiver.got[0]
    assert orjson.loads(body) == alerts
    want = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert headers["X-Inferwatch-Signature"] == want


def test_a_resolved_alert_takes_the_severity_its_firing_had():
    record = {"alert_id": "a", "status": "firing", "model": "m", "feature": "x", "segment": {"region": "eu"},
              "incident_id": "i", "kind": "drift", "detector": "mean", "severity": "critical", "score": 30.0,
              "threshold": 25.0, "event_time": "2026-11-01T00:00:00.000Z", "position": 7, "event_id": "e",
              "message": "m"}
    resolved = {**record, "alert_id": "b", "status": "resolved", "severity": "info",
                "event_time": "2026-11-01T00:10:00.000Z"}
    receiver = Receiver()
    try:
        sink = AlertmanagerSink(receiver.url.rstrip("/"))
        sink.send([record])
        sink.send([resolved])
    finally:
        receiver.close()
    first, second = (orjson.loads(b)[0] for _, b in receiver.got)
    assert first["labels"] == second["labels"] and first["labels"]["segment"] == "region=eu"
    assert second["endsAt"] == resolved["event_time"] and "endsAt" not in first
    assert alertmanager_alert(resolved)["labels"]["severity"] == "info"  # alone, it says what it is


def test_a_refusal_is_a_config_error_and_an_outage_is_waited_then_named():
    refusing = Receiver(status=400)
    try:
        with pytest.raises(ConfigError):
            WebhookSink(refusing.url).send([{"alert_id": "a"}])
    finally:
        refusing.close()
    with pytest.raises(ServiceUnavailable):
        WebhookSink(f"http://127.0.0.1:{listen_port()}/", patience=1.0).send([{"alert_id": "a"}])
    with pytest.raises(ConfigError):
        AlertmanagerSink("localhost:9093")


def test_the_worker_posts_its_alerts_to_alertmanager_without_waiting_on_it(services, alertmanager, receiver,
                                                                             tmp_path):
    """The live worker on the demo: Alertmanager gets the unit bug's episode, grouped by its incident, with
    the alert the alerts topic has."""
    from test_worker import Worker

    from inferwatch.testing.services import create_topic, kcat_consume, kcat_produce, unique

    bootstrap = services["KAFKA_BOOTSTRAP_SERVERS"]
    topic = unique("notify")
    create_topic(bootstrap, topic, 1)
    kcat_produce(bootstrap, topic, DEMO)
    worker = Worker(services, topic, unique("app"), tmp_path)
    worker.args += ["--alertmanager-url", alertmanager]
    worker.start()

    def unit_bug() -> list[dict]:
        return [a for _, b in receiver.got for a in orjson.loads(b)["alerts"]
                if a["labels"].get("feature") == "amount" and a["labels"]["detector"] == "shape"]

    try:
        wait_until(lambda: unit_bug(), 240, "the unit bug's page")
    finally:
        worker.stop()
    live = [orjson.loads(m) for m in kcat_consume(bootstrap, f"{topic}-alerts")]
    mine = [a for a in live if a["feature"] == "amount" and a["detector"] == "shape" and a["status"] == "firing"]
    page = unit_bug()[0]
    assert page["labels"]["incident_id"] == mine[0]["incident_id"] and page["status"] == "firing"
    assert page["annotations"]["alert_id"] == mine[0]["alert_id"]
