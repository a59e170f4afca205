"""The cost of "any partitioning, same answer" (issue 16): the two stages of the live worker, measured.

``python benchmarks/partitioning.py [--events 400000] [--models 10]`` measures:

1. **In process, CPU per event of each stage** on the same events
   (``benchmarks/bad_input.py``'s generator, ``--models`` models in turn):
   the route stage (``route_batch``: model and time of each event, the
   record to send), the detect stage's merge (``merge_batch`` over the
   routed records of 4 source partitions) and the pipeline it feeds, against
   the pipeline alone (what a direct, per-partition worker runs).
2. **Whole processes**: ``inferwatch worker`` from launch to the last event
   counted in Redis, on the same events in one partition (direct) and dealt
   round-robin over 4 partitions (routed; one worker, ``--idle-seconds 1``),
   with the Redis commands and bytes each run sent (``INFO commandstats``,
   ``INFO stats``). Uses ``KAFKA_BOOTSTRAP_SERVERS`` and ``REDIS_URL`` or
   starts ``scripts/services``.

The projection to more workers is written from these figures in
``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from inferwatch.detectors.config import MonitorConfig  # noqa: E402
from inferwatch.streams.event_time import EventTimeMerger  # noqa: E402
from inferwatch.streams.pipeline import Pipeline  # noqa: E402
from inferwatch.streams.routing import merge_batch, route_batch  # noqa: E402
from inferwatch.streams.state_store import PartitionState, read_partitions  # noqa: E402
from inferwatch.testing.services import create_topic, listen_port, services_up, unique  # noqa: E402
from inferwatch.testing.synthetic import generate, to_lines  # noqa: E402

BATCH = 20_000
SOURCES = 4


def events(n: int, models: int) -> list[bytes]:
    lines = to_lines(generate(n, seed=11), first_id=0)
    if models == 1:
        return lines
    return [line.replace(b'"model":"card-fraud"', b'"model":"m%03d"' % (i % models)) for i, line in enumerate(lines)]


def cpu(call) -> float:
    t0 = time.process_time()
    call()
    return time.process_time() - t0


def in_process(lines: list[bytes], config: MonitorConfig) -> dict[str, float]:
    """CPU seconds per million events: route, merge, pipeline after the merge, pipeline alone."""
    n = len(lines)
    parts = [list(range(p, n, SOURCES)) for p in range(SOURCES)]
    routed: list[bytes] = []  # one internal partition takes every model

    def route() -> None:  # the partitions' batches in turn, as they interleave on the internal topic
        states = [PartitionState() for _ in range(SOURCES)]
        step = BATCH // SOURCES
        for lo in range(0, max(map(len, parts)), step):
            for p, rows in enumerate(parts):
                chunk = rows[lo:lo + step]
                if chunk:
                    records, marks = route_batch(states[p], p, chunk, [lines[i] for i in chunk], 256, 1)
                    routed.extend(value for _, value in records)
                    routed.extend(mark for _, mark in marks)

    released: list[list[bytes]] = []

    def merge() -> None:
        merger = EventTimeMerger(range(SOURCES))
        for lo in range(0, len(routed), BATCH):
            values = routed[lo:lo + BATCH]
            released.append(merge_batch(merger, list(range(lo, lo + len(values))), values).values)
        for s in range(SOURCES):
            merger.close(s)
        released.append([raw for _, raw in merger.release()[2]])

    def pipeline(batches: list[list[bytes]]) -> None:
        pipe = Pipeline.build(config, batches[0][:1000])
        for batch in batches:
            if batch:
                pipe.step(batch, messages=True)

    direct = [lines[lo:lo + BATCH] for lo in range(0, n, BATCH)]
    pipeline(direct[:2])  # warm: the compiled kernels load once per process
    per_million = 1e6 / n
    out = {"route": cpu(route) * per_million, "merge": cpu(merge) * per_million}
    out["pipeline after the merge"] = cpu(lambda: pipeline(released)) * per_million
    out["pipeline alone"] = cpu(lambda: pipeline(direct)) * per_million
    assert sum(map(len, released)) == n, "the merge released every event"
    return out


def redis_counters(url: str) -> tuple[int, int]:
    import redis

    r = redis.Redis.from_url(url)
    calls = sum(v["calls"] for k, v in r.info("commandstats").items())
    return calls, int(r.info("stats")["total_net_input_bytes"])


def worker_run(env: dict, path: Path, partitions: int, total: int) -> dict[str, float]:
    bootstrap = env["KAFKA_BOOTSTRAP_SERVERS"]
    topic, app_id = unique("part"), unique("part")
    create_topic(bootstrap, topic, partitions)
    lines = path.read_bytes().splitlines()
    for p in range(partitions):
        part = path.with_suffix(f".{p}")
        part.write_bytes(b"\n".join(lines[p::partitions]) + b"\n")
        subprocess.run(["kcat", "-b", bootstrap, "-t", topic, "-P", "-p", str(p), "-l", str(part)], check=True)
    calls0, bytes0 = redis_counters(env["REDIS_URL"])
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "inferwatch", "worker", "--events-topic", topic, "--alerts-topic", f"{topic}-alerts",
         "--dead-letters-topic", f"{topic}-dead", "--app-id", app_id, "--metrics-port", str(listen_port()),
         "--web-port", str(listen_port()), "--idle-seconds", "1"],
        env={**os.environ, **env}, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while sum(s.events + s.dead_letters for s in read_partitions(env["REDIS_URL"], app_id).values()) < total:
            if proc.poll() is not None:
                sys.exit(f"the worker exited with {proc.returncode}")
            time.sleep(0.05)
        seconds = time.perf_counter() - started
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    calls1, bytes1 = redis_counters(env["REDIS_URL"])
    per_million = 1e6 / total
    return {"seconds": seconds, "events/s": total / seconds,
            "redis commands per million": (calls1 - calls0) * per_million,
            "redis MB in per million": (bytes1 - bytes0) * per_million / 1e6}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=400_000)
    parser.add_argument("--models", type=int, default=10)
    args = parser.parse_args()
    lines = events(args.events, args.models)
    config = MonitorConfig()
    print(f"{args.events:,} events, {args.models} models, {SOURCES} source partitions, batches of {BATCH:,}")
    for name, value in in_process(lines, config).items():
        print(f"  in process, CPU s per million events: {name:<26} {value:6.2f}")
    env, _ = services_up()
    path = HERE / "data" / f"partitioning_{args.events}_{args.models}.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    for partitions in (1, SOURCES):
        r = worker_run(env, path, partitions, len(lines))
        mode = "direct" if partitions == 1 else "routed"
        print(f"  worker, {partitions} partition(s) ({mode}): {r['seconds']:.2f} s, {r['events/s']:,.0f} events/s; "
              f"Redis {r['redis commands per million']:,.0f} commands and {r['redis MB in per million']:.1f} MB "
              "in per million events")


if __name__ == "__main__":
    main()
