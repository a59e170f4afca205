"""Topic replay speed against file replay of the same events and a raw kafka-python loop, one run;
and the same events dealt round-robin over 4 partitions (merged back in event time) against one partition.

Usage: ``python benchmarks/topic_replay.py [N_EVENTS]`` (default 1,000,000). Each figure is the
best of two. Uses ``KAFKA_BOOTSTRAP_SERVERS`` or starts ``scripts/services``.
"""

from __future__ import annotations

import io
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

import orjson  # noqa: E402

from inferwatch.detectors.config import MonitorConfig  # noqa: E402
from inferwatch.streams.replay import replay_file  # noqa: E402
from inferwatch.streams.topic_replay import replay_topic  # noqa: E402
from inferwatch.testing.datafile import events_file  # noqa: E402
from inferwatch.testing.services import create_topic, services_up, unique  # noqa: E402


def raw_loop(bootstrap: str, topic: str, n: int) -> float:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                             max_partition_fetch_bytes=8 << 20)
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    start, seen = time.perf_counter(), 0
    while seen < n:
        for records in consumer.poll(timeout_ms=1000, max_records=10_000).values():
            for r in records:
                orjson.loads(r.value)
            seen += len(records)
    consumer.close()
    return time.perf_counter() - start


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    env, _ = services_up()
    bootstrap = env["KAFKA_BOOTSTRAP_SERVERS"]
    path = events_file(n)
    topic = unique("topic-replay")
    create_topic(bootstrap, topic, 1)
    subprocess.run(["kcat", "-b", bootstrap, "-t", topic, "-P", "-l", str(path)], check=True)
    spread = unique("topic-replay4")
    create_topic(bootstrap, spread, 4)
    lines = path.read_bytes().splitlines()
    for p in range(4):
        part = path.with_name(f"{path.stem}.p{p}")
        part.write_bytes(b"\n".join(lines[p::4]) + b"\n")
        subprocess.run(["kcat", "-b", bootstrap, "-t", spread, "-P", "-p", str(p), "-l", str(part)], check=True)
        part.unlink()
    cfg = MonitorConfig()
    t_file = t_topic = t_raw = t_spread = float("inf")
    for _ in range(2):
        t = time.perf_counter()
        replay_file(path, cfg, io.BytesIO())
        t_file = min(t_file, time.perf_counter() - t)
        t = time.perf_counter()
        replay_topic(bootstrap, topic, 0.0, None, cfg, io.BytesIO())
        t_topic = min(t_topic, time.perf_counter() - t)
        t_raw = min(t_raw, raw_loop(bootstrap, topic, n))
        t = time.perf_counter()
        replay_topic(bootstrap, spread, 0.0, None, cfg, io.BytesIO())
        t_spread = min(t_spread, time.perf_counter() - t)
    print(f"{n:,} events: file replay {n / t_file:,.0f}/s, topic replay {n / t_topic:,.0f}/s, "
          f"raw kafka-python poll + orjson {n / t_raw:,.0f}/s")
    print(f"topic/file {t_file / t_topic:.2f} (target >= 0.7), topic/raw consumer {t_raw / t_topic:.2f}")
    print(f"4 partitions, round-robin, merged in event time: {n / t_spread:,.0f}/s; "
          f"4 partitions / 1 partition {t_topic / t_spread:.2f}")


if __name__ == "__main__":
    main()
