"""Any partitioning, same answer: one model's alerts whatever the partitions, keys and workers (real Kafka, Redis)."""

from __future__ import annotations

import math
import random
import subprocess
from pathlib import Path

import msgspec
import orjson
import pytest
from test_worker import DEMO, Worker, replay_alerts

from inferwatch.streams.state_store import read_partitions
from inferwatch.testing.services import create_topic, kcat_consume, kcat_produce, unique, wait_until

pytestmark = pytest.mark.integration


def deal(bootstrap: str, topic: str, path: Path, partitions: int, tmp: Path, how: str) -> int:
    """Produce the non-blank lines of ``path`` into a new topic: round-robin (no key) or keyed by a field.
    Returns the number of messages."""
    create_topic(bootstrap, topic, partitions)
    lines = [line for line in path.read_bytes().splitlines() if line.strip()]
    if how == "round-robin":
        for p in range(partitions):
            part = tmp / f"{topic}-{p}.jsonl"
            part.write_bytes(b"\n".join(lines[p::partitions]) + b"\n")
            subprocess.run(["kcat", "-b", bootstrap, "-t", topic, "-P", "-p", str(p), "-l", str(part)], check=True,
                           timeout=120)
    else:
        whole = tmp / f"{topic}.jsonl"
        whole.write_bytes(b"\n".join(lines) + b"\n")
        kcat_produce(bootstrap, topic, whole, keyed_by=how)
    return len(lines)


def counted(redis_url: str, app_id: str) -> int:
    """Events and dead letters in the stored states of ``app_id`` (each message is one or the other)."""
    return sum(s.events + s.dead_letters for s in read_partitions(redis_url, app_id).values())


def workers(services, topic: str, app_id: str, tmp: Path, n: int, named: bool = False) -> list[Worker]:
    """``named``: each with its own ``--instance-id``, kept across its restarts (static group membership)."""
    out = []
    for i in range(n):
        w = Worker(services, topic, app_id, tmp)
        w.args += ["--idle-seconds", "1"] + (["--instance-id", f"worker-{i}"] if named else [])
        w.tmp = tmp / f"w{len(out)}-{app_id}"
        w.tmp.mkdir()
        out.append(w)
    return out


def monitor(services, topic: str, total: int, tmp: Path, n: int, kill_at: list[int] = (),
            named: bool = False, app_id: str | None = None) -> tuple[str, list[dict]]:
    """``n`` workers on ``topic`` until every message is counted (``kill -9`` of a random one at each count in
    ``kill_at``, then a restart); (app id, its alerts)."""
    redis_url = services["REDIS_URL"]
    app_id = app_id or unique("app")
    running = workers(services, topic, app_id, tmp, n, named)
    rng = random.Random(5)
    try:
        for w in running:
            w.start()
        for cut in kill_at:
            wait_until(lambda cut=cut: all(w.alive() for w in running) and counted(redis_url, app_id) >= cut, 240,
                       f"{cut} events counted", 0.05)
            victim = rng.choice(running)
            victim.kill()
            victim.start()
        wait_until(lambda: all(w.alive() for w in running) and counted(redis_url, app_id) >= total, 300,
                   "every message counted")
    finally:
        for w in running:
            w.stop()
    assert counted(redis_url, app_id) == total  # nothing twice
    return app_id, [orjson.loads(m) for m in kcat_consume(services["KAFKA_BOOTSTRAP_SERVERS"], f"{topic}-alerts")]


def same(alerts: list[dict]) -> list[tuple]:
    """What must not depend on the partitioning: ids, columns, segments, statuses, times (each alert once)."""
    return sorted({(a["alert_id"], a["model"], a["feature"], orjson.dumps(a["segment"]), a["detector"], a["status"],
                    a["event_time"]) for a in alerts})


def scores_agree(alerts: list[dict], reference: list[dict]) -> bool:
    """The same scores, up to float rounding (sums over batches cut elsewhere differ in the last digits)."""
    want = {a["alert_id"]: a["score"] for a in reference}
    return all(math.isclose(a["score"], want[a["alert_id"]], rel_tol=1e-6, abs_tol=1e-9) for a in alerts)


def differences(alerts: list[dict], reference: list[dict]) -> str:
    """The alerts (whole records) that only one side has, or whose scores differ: for the failure's message."""
    want = {a["alert_id"]: a for a in reference}
    got = {a["alert_id"]: a for a in alerts}
    only = [("only here", a) for k, a in got.items() if k not in want or same([a]) != same([want[k]])]
    only += [("only in the file replay", a) for k, a in want.items() if k not in got]
    only += [("score", a) for k, a in got.items() if k in want and not scores_agree([a], reference)]
    return "\n".join(f"{why}: {orjson.dumps(a).decode()}" for why, a in only) or "(none)"


def two_models_in_time_order(path: Path, n: int = 40_000) -> None:
    """Two models (every third event the second), a x100 unit bug from the middle on, distinct times in order."""
    from inferwatch.testing.synthetic import generate, to_lines

    cols = generate(n, seed=21)
    cols.amount[n // 2:] *= 100
    lines = [line.replace(b'"model":"card-fraud"', b'"model":"card-fraud-eu"') if i % 3 == 0 else line
             for i, line in enumerate(to_lines(cols))]
    path.write_bytes(b"\n".join(lines) + b"\n")


def test_file_one_partition_round_robin_and_keyed_by_event_id_give_the_same_alerts(services, tmp_path):
    """Two models: (i) a file replay, (ii) one partition and one worker, (iii) round-robin over 4 partitions
    with two workers, (iv) keyed by event_id over 8 partitions with three workers. The events' times are
    distinct and in order, so the merge gives back the file's order: the very same alerts, fired at the same
    events (an event with an unreadable or lone far-off time keeps its place in its partition instead: see
    the idle and kill tests, on the demo, for those)."""
    bootstrap = services["KAFKA_BOOTSTRAP_SERVERS"]
    data = tmp_path / "two-models.jsonl"
    two_models_in_time_order(data)
    reference = replay_alerts(data)
    from_file = same(reference)
    assert from_file and {a[1] for a in from_file} == {"card-fraud", "card-fraud-eu"}
    for partitions, n, how in ((1, 1, "round-robin"), (4, 2, "round-robin"), (8, 3, "event_id")):
        topic = unique(f"any{partitions}")
        total = deal(bootstrap, topic, data, partitions, tmp_path, how)
        _, alerts = monitor(services, topic, total, tmp_path, n)
        assert same(alerts) == from_file and scores_agree(alerts, reference), (
            f"{partitions} partitions, {how}: {differences(alerts, reference)}")
        assert {a["position"]["topic"] for a in alerts} == {topic}


def test_kill_9_of_any_worker_counts_exactly_and_keeps_the_alert_ids(services, tmp_path):
    """Round-robin over 4 partitions, two workers (each restarted under its --instance-id), a random one
    killed three times: every message counted once, per model and column, and the clean run's alerts."""
    bootstrap, redis_url = services["KAFKA_BOOTSTRAP_SERVERS"], services["REDIS_URL"]
    topic = unique("anykill")
    total = deal(bootstrap, topic, DEMO, 4, tmp_path, "round-robin")
    app_id, alerts = monitor(services, topic, total, tmp_path, 2, kill_at=[6_000, 14_000, 22_000],
                             named=True)
    states = read_partitions(redis_url, app_id)
    assert sum(s.events for s in states.values()) == 30_002 and sum(s.dead_letters for s in states.values()) == 13
    assert {a["alert_id"] for a in alerts} == {a["alert_id"] for a in replay_alerts(DEMO)}


def test_an_idle_partition_holds_detection_back_no_longer_than_its_timeout(services, tmp_path):
    """Four partitions, events in three: the fourth says it is idle and the model's stage goes on."""
    bootstrap, redis_url = services["KAFKA_BOOTSTRAP_SERVERS"], services["REDIS_URL"]
    topic = unique("idle")
    create_topic(bootstrap, topic, 4)
    lines = [line for line in DEMO.read_bytes().splitlines() if line.strip()][:3_000]
    for p in range(3):
        part = tmp_path / f"p{p}.jsonl"
        part.write_bytes(b"\n".join(lines[p::3]) + b"\n")
        subprocess.run(["kcat", "-b", bootstrap, "-t", topic, "-P", "-p", str(p), "-l", str(part)], check=True,
                       timeout=120)
    app_id, _ = monitor(services, topic, len(lines), tmp_path, 1)
    assert counted(redis_url, app_id) == len(lines)
    # the idle partition speaks again with times before all that was released: late, counted once, kept
    old = tmp_path / "old.jsonl"
    old.write_bytes(b"\n".join(line.replace(b'"timestamp":"2026-', b'"timestamp":"2025-') for line in lines[:10]))
    subprocess.run(["kcat", "-b", bootstrap, "-t", topic, "-P", "-p", "3", "-l", str(old)], check=True, timeout=120)
    (tmp_path / "again").mkdir()
    monitor(services, topic, len(lines) + 10, tmp_path / "again", 1, app_id=app_id)
    mergers = [msgspec.msgpack.decode(s.merger) for s in read_partitions(redis_url, app_id).values() if s.merger]
    assert sum(m["late"] for m in mergers) == 10


def joined_of(redis_url: str, app_id: str) -> int:
    """Labels joined, as the stored states say."""
    from inferwatch.streams.status import collect

    return sum(join["joined"] for join in collect(redis_url, app_id)["labels"].values())


@pytest.mark.parametrize("partitions", [2, 1])
def test_a_labels_topic_gives_the_performance_alerts_of_replay_with_labels(services, tmp_path, partitions):
    """Concept drift (10 % of the labels flipped from event 30,000): the events round-robin over 2 partitions
    (routed, merged with the labels in event time) or on 1 (read directly, the labels beside them), the labels
    on a topic of their own, one worker with ``--labels-topic``, killed once while it works. Its
    performance alerts (ids, statuses, the predictions' events and places) are those of ``replay --file
    --labels``, each once. (Labels later than the last event wait for more events: left out of both.)"""
    from inferwatch.streams.labels import LabelFeed
    from inferwatch.testing.labelled import labelled

    bootstrap, redis_url = services["KAFKA_BOOTSTRAP_SERVERS"], services["REDIS_URL"]
    events, labels = labelled(tmp_path, change=30_000, flip=0.10)
    last = LabelFeed.from_lines([orjson.dumps({"event_id": "x", "model": "m", "label": 0,
                                               "timestamp": orjson.loads(events.read_bytes().splitlines()[-1])[
                                                   "timestamp"]})]).times[0]
    lines = labels.read_bytes().splitlines()
    known = lines[:int((LabelFeed.from_lines(lines).times <= last).sum())]  # the file is in label-time order
    labels.write_bytes(b"\n".join(known) + b"\n")
    reference = [a for a in replay_alerts(events, ["--labels", str(labels)])
                 if a["detector"] != "label_coverage"]  # the end of a file expires what still waits: not live
    performance = {a["alert_id"] for a in reference if a["kind"] == "performance"}
    assert performance and {a["kind"] for a in reference} == {"performance"}

    topic, labels_topic, app_id = unique("perf"), unique("labels"), unique("app")
    total = deal(bootstrap, topic, events, partitions, tmp_path, "round-robin")
    deal(bootstrap, labels_topic, labels, 1, tmp_path, "round-robin")
    [w] = workers(services, topic, app_id, tmp_path, 1)
    w.args += ["--labels-topic", labels_topic]
    alerts_of = lambda: [orjson.loads(m) for m in kcat_consume(bootstrap, f"{topic}-alerts")]  # noqa: E731
    try:
        w.start()
        wait_until(lambda: counted(redis_url, app_id) >= total // 2, 240, "half the events counted", 0.05)
        w.kill()
        w.start()
        wait_until(lambda: counted(redis_url, app_id) >= total and performance <= {a["alert_id"] for a in alerts_of()}
                   and joined_of(redis_url, app_id) == len(known), 300,
                   "every event counted, every known label joined and the performance alerts out")
        text = w.metrics()
    finally:
        w.stop()
    assert counted(redis_url, app_id) == total
    if partitions == 1:  # read directly, not routed: the labels topic's next offset is in the partition's state
        states = read_partitions(redis_url, app_id)
        assert list(states) == [f"{topic}:0"] and states[f"{topic}:0"].labels_next == {0: len(known)}
    # the metrics say what the join did since the restart, and how near the error rate is to its threshold
    joined = [float(line.split()[-1]) for line in text.splitlines()
              if line.startswith('inferwatch_labels_total{outcome="joined"}')]
    assert joined and 0 < joined[0] <= len(known)
    assert 'detector="error_rate",feature="prediction",model="churn"' in text
    # and so does status, from Redis: every known label joined (the ones after the kill too, none twice)
    from inferwatch.streams.status import collect

    [join] = collect(redis_url, app_id)["labels"].values()
    assert join["joined"] + join["waiting"] == total and join["joined"] == len(known) and join["expired"] == 0
    assert join["evidence"]["churn/prediction/error_rate"] >= 1.0  # the drift is still there at the end
    alerts = alerts_of()
    assert same(alerts) == same(reference)
    sent = {a["alert_id"]: a for a in reference}
    assert all(a["event_id"] == sent[a["alert_id"]]["event_id"] for a in alerts)
    for a in alerts:  # the prediction's place: line i of the file was dealt to partition i % p, offset i // p
        line = sent[a["alert_id"]]["position"]
        assert a["position"] == {"topic": topic, "partition": line % partitions, "offset": line // partitions}
