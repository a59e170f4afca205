"""The live worker on real Kafka and Redis (started by scripts/services)."""

from __future__ import annotations

import base64
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from inferwatch.detectors.config import MonitorConfig
from inferwatch.streams.pipeline import Pipeline
from inferwatch.streams.state_store import read_partitions
from inferwatch.testing.services import ROOT, create_topic, kcat_consume, kcat_produce, listen_port, unique, wait_until

DEMO = ROOT / "examples" / "card_fraud_stream.jsonl"
pytestmark = pytest.mark.integration


class Worker:
    """``inferwatch worker`` as a subprocess."""

    def __init__(self, env, events, app_id, tmp: Path, config: Path | None = None):
        self.env = {**os.environ, **env}
        self.args = [sys.executable, "-m", "inferwatch", "worker", "--events-topic", events,
                     "--alerts-topic", f"{events}-alerts", "--dead-letter-topic", f"{events}-dead",
                     "--outputs-topic", f"{events}-outputs",
                     "--app-id", app_id, "--batch-size", "1000"]
        if config:
            self.args += ["--config", str(config)]
        self.tmp = tmp
        self.proc = None
        self.starts = 0

    def start(self):
        self.starts += 1
        self.metrics_port, self.web_port = listen_port(), listen_port()
        log = open(self.tmp / f"worker-{self.starts}.log", "wb")
        self.proc = subprocess.Popen(
            self.args + ["--web-port", str(self.web_port), "--metrics-port", str(self.metrics_port)],
            env=self.env, cwd=ROOT, stdout=log, stderr=log)
        return self

    def metrics(self) -> str:
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as r:
            return r.read().decode()

    def health(self) -> tuple[int, dict]:
        """(HTTP status, body) of ``GET /healthz``."""
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}/healthz", timeout=5) as r:
                return r.status, orjson.loads(r.read())
        except urllib.error.HTTPError as exc:
            return exc.code, orjson.loads(exc.read())

    def get(self, path: str) -> int:
        """The HTTP status of ``GET path`` on the worker's web port (Faust's web server)."""
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}{path}", timeout=5) as r:
                return r.status
        except urllib.error.HTTPError as exc:
            return exc.code

    def alive(self) -> bool:
        """True while the worker runs; fails the test at once, with its log, if it exited."""
        if self.proc.poll() is not None:
            log = (self.tmp / f"worker-{self.starts}.log").read_bytes().decode(errors="replace")
            raise AssertionError(f"the worker exited with {self.proc.returncode}:\n{log[-3000:]}")
        return True

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()



def partition_states(redis_url, app_id):
    return read_partitions(redis_url, app_id)


def offsets_done(redis_url, app_id, topic, ends: dict[int, int]):
    states = partition_states(redis_url, app_id)
    return all(end == 0 or (f"{topic}:{p}" in states and states[f"{topic}:{p}"].next_offset >= end)
               for p, end in ends.items())


def end_offsets(bootstrap, topic):
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        return {tp.partition: off for tp, off in consumer.end_offsets(parts).items()}
    finally:
        consumer.close()


def monitor_to_end(services, path: Path, tmp: Path, name: str, config: Path | None = None) -> tuple[str, str]:
    """kcat produces ``path`` into a new 1-partition topic; one worker monitors all of it. (topic, app id)"""
    bootstrap, redis_url = services["KAFKA_BOOTSTRAP_SERVERS"], services["REDIS_URL"]
    topic, app_id = unique(name), unique("app")
    create_topic(bootstrap, topic, 1)
    kcat_produce(bootstrap, topic, path)
    worker = Worker(services, topic, app_id, tmp, config).start()
    try:
        ends = end_offsets(bootstrap, topic)
        wait_until(lambda: worker.alive() and offsets_done(redis_url, app_id, topic, ends), 240, "the end of the topic")
    finally:
        worker.stop()
    return topic, app_id


def replay_alerts(path: Path, extra=()):
    res = subprocess.run([sys.executable, "-m", "inferwatch", "replay", "--file", str(path), *extra],
                         capture_output=True, cwd=ROOT, check=True, timeout=300)
    return [orjson.loads(x) for x in res.stdout.splitlines()]


def key(alerts):
    return sorted((a["alert_id"], a["feature"], a["detector"], a["status"]) for a in alerts)


def test_kcat_in_alerts_out_equals_file_replay(services, tmp_path):
    """kcat produces the demo; the worker's alerts equal ``replay --file`` (ids, columns, statuses)."""
    bootstrap, redis_url = services["KAFKA_BOOTSTRAP_SERVERS"], services["REDIS_URL"]
    topic = unique("demo")
    create_topic(bootstrap, topic, 1)
    kcat_produce(bootstrap, topic, DEMO)
    app_id = unique("app")
    worker = Worker(services, topic, app_id, tmp_path).start()
    try:
        ends = end_offsets(bootstrap, topic)
        wait_until(lambda: worker.alive() and offsets_done(redis_url, app_id, topic, ends), 240, "the worker to reach the end of the topic")
        metrics = wait_until(lambda: _metric(worker.metrics(), 'inferwatch_events_total{partition="all"}') == 30002
                             and worker.metrics(), 30, "the metrics to count every event")
        # Faust's web port serves /healthz only: its pages of table contents, router, stats and graph are off
        assert worker.health()[0] == 200
        for page in ("/table/", "/router/", "/stats/", "/graph/"):
            assert worker.get(page) == 404, page
    finally:
        worker.stop()
    assert _metric(metrics, 'inferwatch_dead_letters_total{partition="all"}') == 13
    assert _metric(metrics, 'inferwatch_model_events_total{model="card-fraud"}') == 30002
    assert _metric(metrics, 'inferwatch_alerts_total{model="card-fraud",segment="",status="firing"}') == 4  # unit bug, new country, 2 type changes
    assert "inferwatch_batch_seconds_bucket" in metrics and "inferwatch_consumer_lag" in metrics
    # open episodes: the unit bug and the new country; the type changes resolved
    assert _metric(metrics, 'inferwatch_open_alerts{detector="shape",feature="amount",model="card-fraud",segment=""}') == 1
    assert _metric(metrics, 'inferwatch_open_alerts{detector="type_changed",feature="amount",model="card-fraud",'
                            'segment=""}') is None
    assert sum(1 for line in metrics.splitlines() if line.startswith("inferwatch_open_alerts{")) == 2
    # evidence over threshold: the unit bug's detector is past 1, a column that did not change is under it
    assert _metric(metrics, 'inferwatch_evidence_ratio{detector="mean",feature="amount",model="card-fraud",'
                            'segment=""}') >= 1
    assert 0 <= _metric(metrics, 'inferwatch_evidence_ratio{detector="mean",feature="age",model="card-fraud",'
                                 'segment=""}') < 1
    checked = subprocess.run([promtool(), "check", "metrics"], input=metrics.encode(), capture_output=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    live = [orjson.loads(m) for m in kcat_consume(bootstrap, f"{topic}-alerts")]
    assert live and key(live) == key(replay_alerts(DEMO))
    status = subprocess.run([sys.executable, "-m", "inferwatch", "status", "--json", "--app-id", app_id,
                             "--redis-url", redis_url, "--bootstrap-servers", bootstrap],
                            capture_output=True, cwd=ROOT, check=True, timeout=60)
    report = orjson.loads(status.stdout)
    assert report["partitions"][f"{topic}:0"]["lag"] == 0
    model = report["models"]["card-fraud"]
    assert model["events"] == 30002 and ["amount", "shape"] in model["open_alerts"]
    assert model["columns"]["amount"]["detectors"]["mean"]["open"] is True
    assert all(a["position"]["topic"] == topic for a in live)
    dead = [orjson.loads(m) for m in kcat_consume(bootstrap, f"{topic}-dead")]
    lines = DEMO.read_bytes().split(b"\n")
    assert len(dead) == 13
    for d in dead:
        assert base64.b64decode(d["raw"]) == lines[d["source"]["offset"]] and d["error"]


def promtool() -> str:
    """Debian's promtool (package prometheus), installed when missing, as scripts/services does."""
    import shutil

    found = shutil.which("promtool")
    if found is None:
        subprocess.run([str(ROOT / "scripts" / "services"), "install"], check=True, timeout=900)
        found = shutil.which("promtool")
    assert found, "promtool is not installed"
    return found


def _metric(text: str, series: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return None


def stream_with_unit_bug(path: Path, n: int) -> None:
    from inferwatch.testing.synthetic import generate, to_lines

    cols = generate(n, seed=21)
    cols.amount[n // 2:] *= 100
    path.write_bytes(b"\n".join(to_lines(cols)) + b"\n")


def test_kill_9_at_random_points_loses_nothing_and_counts_nothing_twice(services, tmp_path):
    """Killed three times mid-stream and restarted: exact counts, and the clean run's alert ids."""
    bootstrap, redis_url = services["KAFKA_BOOTSTRAP_SERVERS"], services["REDIS_URL"]
    n = 60_000
    data = tmp_path / "events.jsonl"
    stream_with_unit_bug(data, n)
    topic = unique("crash")
    create_topic(bootstrap, topic, 1)
    kcat_produce(bootstrap, topic, data)
    app_id = unique("app")
    worker = Worker(services, topic, app_id, tmp_path)
    rng = random.Random(7)
    try:
        for cut in sorted(rng.sample(range(5_000, n - 5_000), 3)):
            worker.start()
            wait_until(lambda: worker.alive() and offsets_done(redis_url, app_id, topic, {0: cut}), 240, f"progress past offset {cut}", 0.05)
            worker.kill()
        worker.start()
        wait_until(lambda: worker.alive() and offsets_done(redis_url, app_id, topic, {0: n}), 240, "the end of the topic")
    finally:
        worker.stop()
    state = partition_states(redis_url, app_id)[f"{topic}:0"]
    assert state.events == n and state.next_offset == n
    head, fields = read_partitions(redis_url, app_id, fields=True)[f"{topic}:0"]
    model = Pipeline.from_parts(head.pipeline, fields, MonitorConfig()).monitor.models["card-fraud"]
    assert model.events == n
    for name, column in model.columns.items():
        assert column.stats.count == n, name
    live = [orjson.loads(m) for m in kcat_consume(bootstrap, f"{topic}-alerts")]
    clean = replay_alerts(data)
    assert clean and {a["alert_id"] for a in live} == {a["alert_id"] for a in clean}


def test_bad_input_goes_to_the_dead_letter_topic_with_offset_and_bytes(services, tmp_path):
    bootstrap, redis_url = services["KAFKA_BOOTSTRAP_SERVERS"], services["REDIS_URL"]
    good = DEMO.read_bytes().split(b"\n")[:3000]
    good = [g for g in good if b'"event_id":"e-' in g]
    bad = [b"\x00\xff garbage", b'{"event_id":"x","model":"card-fraud","timestamp":"t","features":{"amount":1}}',
           b'{"event_id":"y","model":"card-fraud","timestamp":"2026-11-01T00:00:00Z","features":{"amount":"cheap"}}',
           b'{"event_id":"z","model":"card-fraud","timestamp":"2026-11-01T00:00:00Z","features":{"country":"' +
           b"x" * 5000 + b'"}}']
    lines = good[:1000] + bad + good[1000:]
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    config = tmp_path / "monitor.yaml"
    config.write_text("limits: {max_message_bytes: 4096}\n")
    topic, app_id = monitor_to_end(services, path, tmp_path, "bad", config)
    dead = [orjson.loads(m) for m in kcat_consume(bootstrap, f"{topic}-dead")]
    # offset 1002 carries a string for a number: the event counts, with amount missing (a type change)
    assert sorted(d["source"]["offset"] for d in dead) == [1000, 1001, 1003]
    for d in dead:
        assert base64.b64decode(d["raw"]) == lines[d["source"]["offset"]]
    assert any("over the cap" in d["error"] for d in dead)
    state = partition_states(redis_url, app_id)[f"{topic}:0"]
    assert state.events == len(good) + 1 and state.dead_letters == 3


class OwnRedis:
    """A Redis server of this test's own, with an append-only file so a restart keeps its data."""

    def __init__(self, tmp: Path):
        self.port, self.dir = listen_port(), tmp / "redis-aof"
        self.dir.mkdir()
        self.proc = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self):
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
                                      str(self.dir), "--appendonly", "yes", "--appendfsync", "always", "--save", ""],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True)
                   .stdout.strip() == b"PONG", 30, "redis to answer", 0.1)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


def test_redis_outage_pauses_the_worker_and_it_resumes_exactly(services, tmp_path):
    """Redis stopped mid-stream and started again: the worker waits, then the counts are exact."""
    bootstrap = services["KAFKA_BOOTSTRAP_SERVERS"]
    redis = OwnRedis(tmp_path)
    redis.start()
    n = 40_000
    data = tmp_path / "events.jsonl"
    stream_with_unit_bug(data, n)
    topic = unique("outage")
    create_topic(bootstrap, topic, 1)
    app_id = unique("app")
    worker = Worker({**services, "REDIS_URL": redis.url}, topic, app_id, tmp_path)
    lines = data.read_bytes().splitlines(keepends=True)
    first, rest = tmp_path / "first.jsonl", tmp_path / "rest.jsonl"
    first.write_bytes(b"".join(lines[:10_000]))
    rest.write_bytes(b"".join(lines[10_000:]))
    try:
        kcat_produce(bootstrap, topic, first)
        worker.start()
        wait_until(lambda: worker.alive() and offsets_done(redis.url, app_id, topic, {0: 10_000}), 240, "progress", 0.05)
        redis.stop()
        kcat_produce(bootstrap, topic, rest)  # (the rest comes while Redis is down: the worker must wait for it)
        wait_until(lambda: b"redis unavailable" in b"".join(p.read_bytes() for p in tmp_path.glob("worker-*.log")),
                   120, "the worker to see the outage")
        assert worker.proc.poll() is None, "the worker must survive the outage"
        redis.start()
        wait_until(lambda: worker.alive() and offsets_done(redis.url, app_id, topic, {0: n}), 240, "the end of the topic")
    finally:
        worker.stop()
        redis.stop()
    log = b"".join(p.read_bytes() for p in tmp_path.glob("worker-*.log"))
    assert log.count(b"redis unavailable") == 1 and log.count(b"redis available again") == 1, log.decode()
    redis.start()
    try:
        state = partition_states(redis.url, app_id)[f"{topic}:0"]
    finally:
        redis.stop()
    assert state.events == n and state.next_offset == n


def test_kafka_outage_pauses_the_worker_and_it_resumes_exactly(services, tmp_path):
    """The broker stopped mid-stream and started again: the worker reconnects, the counts are exact."""
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        pytest.skip("the broker is not ours to stop")
    bootstrap, redis_url = services["KAFKA_BOOTSTRAP_SERVERS"], services["REDIS_URL"]
    n = 40_000
    data = tmp_path / "events.jsonl"
    stream_with_unit_bug(data, n)
    topic = unique("kafka-outage")
    create_topic(bootstrap, topic, 1)
    kcat_produce(bootstrap, topic, data)
    app_id = unique("app")
    worker = Worker(services, topic, app_id, tmp_path).start()
    services_cmd = str(ROOT / "scripts" / "services")
    try:
        wait_until(lambda: worker.alive() and offsets_done(redis_url, app_id, topic, {0: 10_000}), 240, "progress", 0.05)
        subprocess.run([services_cmd, "kafka-stop"], check=True, timeout=120)
        subprocess.run([services_cmd, "kafka-start"], check=True, timeout=180)
        assert worker.proc.poll() is None, "the worker must survive the outage"
        wait_until(lambda: worker.alive() and offsets_done(redis_url, app_id, topic, {0: n}), 300, "the end of the topic")
        log = tmp_path / "worker-1.log"
        if "kafka unavailable" in log.read_text(errors="replace"):  # an outage said is an outage ended, once
            wait_until(lambda: "kafka available again" in log.read_text(errors="replace"), 60, "the end-of-outage line")
        text = log.read_text(errors="replace")
        assert text.count("kafka unavailable") <= 1 and text.count("kafka available again") <= 1, text
    finally:
        worker.stop()
    state = partition_states(redis_url, app_id)[f"{topic}:0"]
    assert state.events == n and state.next_offset == n
    live = [orjson.loads(m) for m in kcat_consume(bootstrap, f"{topic}-alerts")]
    assert {a["alert_id"] for a in live} == {a["alert_id"] for a in replay_alerts(data)}
    said = [line for line in (tmp_path / "worker-1.log").read_text(errors="replace").splitlines() if line.strip()]
    assert len(said) <= 12, "an outage is a line when it starts and one when it ends:\n" + "\n".join(said[:40])


def two_models(path: Path) -> None:
    """The demo stream, with every third event relabelled as a second model."""
    lines = DEMO.read_bytes().split(b"\n")
    out = []
    for i, line in enumerate(lines):
        if line and i % 3 == 0:
            line = line.replace(b'"model":"card-fraud"', b'"model":"card-fraud-eu"')
        out.append(line)
    path.write_bytes(b"\n".join(out))


def test_one_partition_one_worker_equals_four_partitions_two_workers(services, tmp_path):
    """Events keyed by model, ``--keyed-by-model``: the alerts do not depend on the partition count or the
    worker count."""
    bootstrap, redis_url = services["KAFKA_BOOTSTRAP_SERVERS"], services["REDIS_URL"]
    data = tmp_path / "two-models.jsonl"
    two_models(data)
    results = []
    for partitions, workers in ((1, 1), (4, 2)):
        topic = unique(f"p{partitions}")
        create_topic(bootstrap, topic, partitions)
        kcat_produce(bootstrap, topic, data, keyed_by="model")
        app_id = unique("app")
        running = []
        for _ in range(workers):
            w = Worker(services, topic, app_id, tmp_path)
            w.args.append("--keyed-by-model")  # detection per partition: the producers keep a model together
            running.append(w.start())
        try:
            ends = end_offsets(bootstrap, topic)
            wait_until(lambda: all(w.alive() for w in running) and offsets_done(redis_url, app_id, topic, ends), 300, f"{partitions} partition(s) done")
        finally:
            for w in running:
                w.stop()
        results.append(key(orjson.loads(m) for m in kcat_consume(bootstrap, f"{topic}-alerts")))
    assert results[0] and results[0] == results[1]
    assert {a[1] for a in results[0]} >= {"amount", "country"}
