"""No message can stop the stream: oversize dead letters, odd timestamps, unreadable state (real Kafka and Redis)."""

from __future__ import annotations

import base64
import hashlib
import time

import orjson
import pytest
from test_worker import DEMO, Worker, end_offsets, offsets_done, partition_states

from inferwatch.testing.services import create_topic, kcat_consume, unique, wait_until

pytestmark = pytest.mark.integration


def produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    """Every value as one message, in order (librdkafka, with room for a 1,000,000-byte message)."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "message.max.bytes": 2_000_000, "linger.ms": 5})
    for value in values:
        producer.produce(topic, value)
        producer.poll(0)
    assert producer.flush(60) == 0


def test_a_dead_letter_too_large_for_its_topic_is_cut_once_and_the_stream_goes_on(services, tmp_path):
    """A 1,000,000-byte invalid message fits the events topic; its dead letter (1.33 MB in base64) does not fit
    a dead-letter topic with the broker's default limit: it is published once, cut, with its size and digest,
    and every event after it is monitored. Epoch-millisecond timestamps on the way crash nothing."""
    bootstrap, redis_url = services["KAFKA_BOOTSTRAP_SERVERS"], services["REDIS_URL"]
    topic, app_id = unique("pill"), unique("app")
    create_topic(bootstrap, topic, 1)
    create_topic(bootstrap, f"{topic}-dead", 1)  # made by someone else, with the broker's default size limit
    good = [line for line in DEMO.read_bytes().splitlines()[:12_500] if b'"event_id":"e-' in line]
    millis = []
    for line in good[11_000:12_000]:
        event = orjson.loads(line)
        event["timestamp"] = 1_793_491_200_000 + len(millis)
        millis.append(orjson.dumps(event))
    pill = b"{" + b"x" * 999_998 + b"}"
    values = good[:11_000] + [pill] + millis + [b"not json"] + good[12_000:]
    produce(bootstrap, topic, values)
    worker = Worker(services, topic, app_id, tmp_path).start()
    try:
        ends = end_offsets(bootstrap, topic)
        wait_until(lambda: worker.alive() and offsets_done(redis_url, app_id, topic, ends), 240, "the end of the topic")
    finally:
        worker.stop()
    dead = [orjson.loads(m) for m in kcat_consume(bootstrap, f"{topic}-dead")]
    assert sorted(d["source"]["offset"] for d in dead) == [11_000, 12_001]  # once each: nothing re-sent
    cut = next(d for d in dead if d["source"]["offset"] == 11_000)
    assert cut["truncated"]["bytes"] == len(pill) and cut["truncated"]["sha256"] == hashlib.sha256(pill).hexdigest()
    assert pill.startswith(base64.b64decode(cut["raw"])) and len(orjson.dumps(cut)) < 1_000_000
    state = partition_states(redis_url, app_id)[f"{topic}:0"]
    assert state.events == len(values) - 2 and state.dead_letters == 2


def test_healthz_says_ok_while_the_worker_works_and_why_when_it_cannot(services, tmp_path):
    """200 with the partitions and lag once caught up; a state that cannot be trusted ends the worker
    (exit non-zero), and until it is gone /healthz does not say ok."""
    import redis

    bootstrap, redis_url = services["KAFKA_BOOTSTRAP_SERVERS"], services["REDIS_URL"]
    topic, app_id = unique("health"), unique("app")
    create_topic(bootstrap, topic, 1)
    produce(bootstrap, topic, DEMO.read_bytes().splitlines()[:2_000])
    worker = Worker(services, topic, app_id, tmp_path).start()
    try:
        ends = end_offsets(bootstrap, topic)
        wait_until(lambda: worker.alive() and offsets_done(redis_url, app_id, topic, ends), 240, "the end of the topic")
        wait_until(lambda: worker.health()[1].get("partitions") == 1, 30, "the health view")
        code, body = worker.health()
        assert code == 200 and body["status"] == "ok" and body["lag"] == 0, body
    finally:
        worker.stop()
    redis.Redis.from_url(redis_url).hset(f"inferwatch:{app_id}:partition:{topic}:0", "doc", b"\x93garbage")
    worker.start()
    answers = []
    try:
        while worker.proc.poll() is None:
            try:
                answers.append(worker.health())
            except OSError:  # not serving yet, or gone
                pass
            time.sleep(0.05)  # polling a live process: no state to wait on
    finally:
        worker.stop()
    assert worker.proc.returncode != 0
    assert all(body["status"] != "ok" or body["partitions"] == 0 for _, body in answers), answers


def test_an_unreadable_state_stops_the_worker_at_once_naming_the_key(services, tmp_path):
    """A partition document that does not decode: the worker exits non-zero, and its log names the key."""
    import redis

    bootstrap, redis_url = services["KAFKA_BOOTSTRAP_SERVERS"], services["REDIS_URL"]
    topic, app_id = unique("corrupt"), unique("app")
    create_topic(bootstrap, topic, 1)
    produce(bootstrap, topic, DEMO.read_bytes().splitlines()[:100])
    key = f"inferwatch:{app_id}:partition:{topic}:0"
    redis.Redis.from_url(redis_url).hset(key, mapping={"next": "50", "doc": b"\x93garbage"})
    worker = Worker(services, topic, app_id, tmp_path).start()
    try:
        started = time.monotonic()
        code = worker.proc.wait(timeout=120)
    finally:
        worker.stop()
    log = (tmp_path / "worker-1.log").read_text(errors="replace")
    assert code != 0 and key in log, log[-2000:]
    assert time.monotonic() - started < 60


def _run_to_end(services, topic, app_id, tmp_path, extra=()) -> Worker:
    bootstrap, redis_url = services["KAFKA_BOOTSTRAP_SERVERS"], services["REDIS_URL"]
    worker = Worker(services, topic, app_id, tmp_path)
    worker.args += list(extra)
    worker.start()
    try:
        ends = end_offsets(bootstrap, topic)
        wait_until(lambda: worker.alive() and offsets_done(redis_url, app_id, topic, ends), 240, "the end of the topic")
        committed = lambda: _committed(bootstrap, app_id, topic) >= ends[0]  # noqa: E731
        wait_until(committed, 60, "the offset hint")
    finally:
        worker.stop()
    return worker


def _committed(bootstrap: str, group: str, topic: str) -> int:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        return consumer.committed([TopicPartition(topic, 0)], timeout=30)[0].offset
    finally:
        consumer.close()


def _exits_naming(worker: Worker, *words: str) -> str:
    worker.start()
    try:
        code = worker.proc.wait(timeout=120)
    finally:
        worker.stop()
    log = (worker.tmp / f"worker-{worker.starts}.log").read_text(errors="replace")
    assert code != 0, log[-2000:]
    for word in words:
        assert word in log, log[-2000:]
    return log


def test_a_lost_state_is_named_and_the_policy_decides(services, tmp_path):
    """Redis lost the partition's state (deleted, as a restart without persistence would): the worker stops,
    naming the key and the committed offset it saw; with --on-lost-state resume-latest it starts over at the end."""
    import redis

    bootstrap, redis_url = services["KAFKA_BOOTSTRAP_SERVERS"], services["REDIS_URL"]
    topic, app_id = unique("lost"), unique("app")
    create_topic(bootstrap, topic, 1)
    produce(bootstrap, topic, DEMO.read_bytes().splitlines()[:2000])
    worker = _run_to_end(services, topic, app_id, tmp_path)
    key = f"inferwatch:{app_id}:partition:{topic}:0"
    redis.Redis.from_url(redis_url).delete(key)
    _exits_naming(worker, key, "state was lost", "committed offset 2000")
    assert partition_states(redis_url, app_id) == {}  # nothing written
    _run_to_end(services, topic, app_id, tmp_path, ["--on-lost-state", "resume-latest"])
    state = partition_states(redis_url, app_id)[f"{topic}:0"]
    assert state.next_offset == 2000 and state.events == 0


def test_a_topic_created_again_under_the_same_name_is_not_skipped_silently(services, tmp_path):
    from kafka.admin import KafkaAdminClient

    bootstrap, redis_url = services["KAFKA_BOOTSTRAP_SERVERS"], services["REDIS_URL"]
    topic, app_id = unique("again"), unique("app")
    create_topic(bootstrap, topic, 1)
    produce(bootstrap, topic, DEMO.read_bytes().splitlines()[:3000])
    worker = _run_to_end(services, topic, app_id, tmp_path)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.delete_topics([topic])
    finally:
        admin.close()
    wait_until(lambda: _recreate(bootstrap, topic), 60, "the topic to be created again")
    produce(bootstrap, topic, DEMO.read_bytes().splitlines()[:1000])
    _exits_naming(worker, f"partition:{topic}:0", "past the end of the log")
    _run_to_end(services, topic, app_id, tmp_path, ["--on-lost-state", "resume-earliest"])
    state = partition_states(redis_url, app_id)[f"{topic}:0"]
    assert state.next_offset == 1000 and state.events == 1000


def _recreate(bootstrap: str, topic: str) -> bool:
    try:
        create_topic(bootstrap, topic, 1)
        return True
    except Exception:  # still being deleted
        time.sleep(0.5)
        return False


def test_kafka_down_at_start_is_waited_for_on_one_line(services, tmp_path):
    """No broker at the address: the worker waits (it used to exit after ~30 s), saying so once."""
    import socket

    with socket.socket() as s:  # an address nothing listens on
        s.bind(("127.0.0.1", 0))
        nowhere = f"127.0.0.1:{s.getsockname()[1]}"
    worker = Worker({**services, "KAFKA_BOOTSTRAP_SERVERS": nowhere}, unique("nowhere"), unique("app"), tmp_path)
    worker.args += ["--bootstrap-servers", nowhere]
    worker.start()
    try:
        log = tmp_path / "worker-1.log"
        wait_until(lambda: "kafka unavailable" in log.read_text(errors="replace"), 60, "the outage line")
        time.sleep(35)  # past the 30 s after which it used to give up; nothing to synchronise with but time
        assert worker.alive()
    finally:
        worker.stop()
    said = [line for line in log.read_text(errors="replace").splitlines() if "unavailable" in line]
    assert len(said) == 1, said
