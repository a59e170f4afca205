"""``inferwatch replay --topic``: a Kafka time range through the core, on a real broker."""

import subprocess
import sys

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inferwatch.testing.services import ROOT, create_topic, kcat_produce, unique

DEMO = ROOT / "examples" / "card_fraud_stream.jsonl"
pytestmark = pytest.mark.integration


def replay(*args):
    res = subprocess.run([sys.executable, "-m", "inferwatch", "replay", *map(str, args)],
                         capture_output=True, cwd=ROOT, timeout=300)
    assert res.returncode == 0, res.stderr.decode()
    return res.stdout


def same(alerts):
    return sorted((a["alert_id"], a["feature"], a["detector"], a["status"], a["score"]) for a in alerts)


@pytest.mark.parametrize("partitions", [1, 4])
def test_topic_replay_equals_file_replay(services, tmp_path, partitions):
    """Same events in a file and in a topic (keyed by model): same ids, columns, statuses, scores."""
    bootstrap = services["KAFKA_BOOTSTRAP_SERVERS"]
    topic = unique(f"replay{partitions}")
    create_topic(bootstrap, topic, partitions)
    kcat_produce(bootstrap, topic, DEMO, keyed_by="model")
    from_file = [orjson.loads(x) for x in replay("--file", DEMO).splitlines()]
    dead = tmp_path / "dead.jsonl"
    first = replay("--topic", topic, "--from", "-1d", "--bootstrap-servers", bootstrap, "--dead-letters-out", dead)
    from_topic = [orjson.loads(x) for x in first.splitlines()]
    assert from_file and same(from_topic) == same(from_file)
    assert all(a["position"]["topic"] == topic for a in from_topic)
    assert len(dead.read_bytes().splitlines()) == 13  # and 2 events with a string for a number, counted
    second = replay("--topic", topic, "--from", "-1d", "--bootstrap-servers", bootstrap)
    assert second == first, "replaying the same range twice gives byte-identical alerts"


def test_events_spread_over_partitions_without_keys_give_the_file_replay_s_alerts(services, tmp_path):
    """The demo dealt round-robin over 4 partitions (no key, as many serving stacks produce): the partitions are
    merged in event time, so one model's detectors see one stream and raise the file replay's alerts."""
    bootstrap = services["KAFKA_BOOTSTRAP_SERVERS"]
    topic = unique("spread")
    create_topic(bootstrap, topic, 4)
    lines = [line for line in DEMO.read_bytes().splitlines() if line.strip()]
    for p in range(4):
        part = tmp_path / f"p{p}.jsonl"
        part.write_bytes(b"\n".join(lines[p::4]) + b"\n")
        subprocess.run(["kcat", "-b", bootstrap, "-t", topic, "-P", "-p", str(p), "-l", str(part)], check=True,
                       timeout=120)
    from_file = [orjson.loads(x) for x in replay("--file", DEMO).splitlines()]
    out = replay("--topic", topic, "--from", "-1d", "--bootstrap-servers", bootstrap)
    from_topic = [orjson.loads(x) for x in out.splitlines()]
    key = lambda alerts: sorted((a["alert_id"], a["feature"], a["detector"], a["status"]) for a in alerts)  # noqa: E731
    assert from_file and key(from_topic) == key(from_file)
    assert {a["position"]["partition"] for a in from_topic} <= {0, 1, 2, 3}


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_partitions_merged_in_event_time_give_back_the_stream(data):
    """A stream in time order, dealt over partitions in any way and read in chunks of any size, comes back
    in its own order; unreadable messages keep their place in their partition."""
    from inferwatch.streams.topic_replay import in_event_time

    n = data.draw(st.integers(1, 120))
    k = data.draw(st.integers(2, 5))
    owner = data.draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n))
    bad = set(data.draw(st.lists(st.integers(0, n - 1), max_size=5)))
    tied = data.draw(st.booleans())  # timestamps shared by several messages
    stream = [b"not json" if i in bad else orjson.dumps({"timestamp": 1_793_491_200 + (i // 3 if tied else i)})
              for i in range(n)]
    parts = [[i for i in range(n) if owner[i] == p] for p in range(k)]
    sizes = data.draw(st.integers(1, 50))

    def chunks(p):
        rows = parts[p]
        for lo in range(0, len(rows), sizes):
            yield np.asarray(rows[lo:lo + sizes]), [stream[i] for i in rows[lo:lo + sizes]]

    merged = [int(o) for _, offsets, _ in in_event_time([chunks(p) for p in range(k)]) for o in offsets]
    assert sorted(merged) == list(range(n))
    sizes = 1  # read one message at a time: the same order (chunk cuts change nothing, ties included)
    assert [int(o) for _, offsets, _ in in_event_time([chunks(p) for p in range(k)]) for o in offsets] == merged
    good = [i for i in merged if i not in bad]
    times = [i // 3 if tied else i for i in good]
    assert times == sorted(times)  # the readable messages in time order
    for p in range(k):  # each partition in its own order
        assert [i for i in merged if owner[i] == p] == parts[p]


def test_a_range_in_the_future_replays_nothing(services):
    bootstrap = services["KAFKA_BOOTSTRAP_SERVERS"]
    topic = unique("future")
    create_topic(bootstrap, topic, 1)
    kcat_produce(bootstrap, topic, DEMO)
    res = subprocess.run([sys.executable, "-m", "inferwatch", "replay", "--topic", topic, "--from", "2999-01-01T00:00:00Z",
                          "--bootstrap-servers", bootstrap], capture_output=True, cwd=ROOT, timeout=300)
    assert res.returncode == 1 and res.stdout == b"" and b"no valid event was monitored" in res.stderr


def test_an_unreachable_broker_is_one_line_and_a_non_zero_exit():
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    res = subprocess.run([sys.executable, "-m", "inferwatch", "replay", "--topic", "t", "--from", "-1d",
                          "--bootstrap-servers", f"127.0.0.1:{port}"], capture_output=True, cwd=ROOT, timeout=120)
    assert res.returncode == 2
    (line,) = res.stderr.decode().splitlines()
    assert f"127.0.0.1:{port}" in line


def test_topic_and_file_are_exclusive():
    res = subprocess.run([sys.executable, "-m", "inferwatch", "replay", "--file", str(DEMO), "--topic", "x"],
                         capture_output=True, cwd=ROOT, timeout=60)
    assert res.returncode == 2 and b"exactly one of --file or --topic" in res.stderr


def test_reader_frames_carry_offsets_and_exact_bytes():
    """The child-to-parent framing keeps every value byte for byte (newlines, empty values, non-ASCII)."""
    import io

    from inferwatch.streams.kafka_reader import read_frames, write_frames

    chunks = [([5, 6, 9], [b'{"a":1}', b"", b"line\nbreak \xc3\xa9"]), ([10], [b"\x00" * 70_000])]
    buffer = io.BytesIO()
    write_frames(iter(chunks), buffer)
    buffer.seek(0)
    assert [(offsets.tolist(), list(values)) for offsets, values in read_frames(buffer)] == chunks


@pytest.mark.parametrize("chunk", [1, 3, 1000])
def test_kcat_and_librdkafka_readers_give_the_same_records(services, chunk):
    """Both partition readers: the same offsets and the same bytes for a range inside a partition."""
    from confluent_kafka import Producer

    from inferwatch.streams.kafka_reader import RangeReader
    from inferwatch.streams.kcat_reader import KcatRangeReader

    bootstrap = services["KAFKA_BOOTSTRAP_SERVERS"]
    topic = unique("readers")
    create_topic(bootstrap, topic, 1)
    values = [b'{"a":1}', b"", b"line\nbreak \xc3\xa9", b"x" * 70_000, b"7 12\nnot a header", b"\n"] * 5
    producer = Producer({"bootstrap.servers": bootstrap})
    for v in values:
        producer.produce(topic, value=v, partition=0)
    assert producer.flush(30) == 0
    lo, hi = 2, len(values) - 3
    results = []
    for reader in (KcatRangeReader, RangeReader):
        chunks = list(reader(bootstrap, topic, 0, lo, hi, chunk))
        assert all(len(o) == chunk for o, _ in chunks[:-1])
        results.append(([int(x) for o, _ in chunks for x in o], [v for _, block in chunks for v in block]))
    assert results[0] == results[1] == (list(range(lo, hi)), values[lo:hi])


def test_a_topic_replay_with_labels_gives_the_file_replay_s_performance_alerts(services, tmp_path):
    """Concept drift in the labels only; the events round-robin over 3 partitions. ``replay --topic --labels``
    gives the performance alerts of ``replay --file --labels`` (ids, statuses, the predictions), each naming
    where its prediction was read."""
    from inferwatch.testing.labelled import labelled

    bootstrap = services["KAFKA_BOOTSTRAP_SERVERS"]
    events, labels = labelled(tmp_path, change=30_000, flip=0.10)
    topic = unique("labelled")
    create_topic(bootstrap, topic, 3)
    lines = events.read_bytes().splitlines()
    for p in range(3):
        part = tmp_path / f"part-{p}.jsonl"
        part.write_bytes(b"\n".join(lines[p::3]) + b"\n")
        subprocess.run(["kcat", "-b", bootstrap, "-t", topic, "-P", "-p", str(p), "-l", str(part)], check=True,
                       timeout=120)
    from_file = [orjson.loads(x) for x in replay("--file", events, "--labels", labels).splitlines()]
    from_topic = [orjson.loads(x) for x in replay("--topic", topic, "--from", "-1d", "--bootstrap-servers", bootstrap,
                                                  "--labels", labels).splitlines()]
    key = sorted((a["alert_id"], a["detector"], a["status"], a["event_id"]) for a in from_file)
    assert [k for k in key if k[1] == "error_rate"] and sorted(
        (a["alert_id"], a["detector"], a["status"], a["event_id"]) for a in from_topic) == key
    line_of = {a["alert_id"]: a["position"] for a in from_file}
    assert all(a["position"] == {"topic": topic, "partition": line_of[a["alert_id"]] % 3,
                                 "offset": line_of[a["alert_id"]] // 3} for a in from_topic)
