"""Throughput ratios of issue 19 for the live paths, whole processes, all in one run.

1. ``inferwatch worker`` (real Kafka and Redis, one partition): clean events
   against the same events with an invalid message after each (valid events
   per second; target >= 0.5), and one model against 1,000 models on 1,000,000
   events (1,000 each; target >= 0.5). Each figure is from the worker's launch
   to its last event saved in Redis: start-up, group join and the first
   calibrations are in it.
2. ``inferwatch guard --http`` under closed-loop ``wrk`` (4 connections,
   ``--seconds`` each): one event per request, all valid against half invalid
   (valid decisions per second; target >= 0.5).

Usage: ``python benchmarks/ratios.py [--seconds 5] [--runs 3]`` (every figure: the median of
``--runs`` pairs run A B A B; the group join makes single runs vary by 2x); the files come from
``benchmarks/bad_input.py`` (run it first). Uses ``KAFKA_BOOTSTRAP_SERVERS``
and ``REDIS_URL`` or starts ``scripts/services``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from bad_input import BAD, many_models_files, write_files  # noqa: E402
from guard import RULES, _wait_port  # noqa: E402

from inferwatch.streams.state_store import read_partitions  # noqa: E402
from inferwatch.testing.services import create_topic, kcat_produce, listen_port, services_up, unique  # noqa: E402


def worker_seconds(env: dict, path: Path, total: int, *extra: str) -> float:
    """Fill a one-partition topic with ``path``; seconds from a worker's launch to ``total`` offsets saved."""
    topic = unique("ratio")
    create_topic(env["KAFKA_BOOTSTRAP_SERVERS"], topic, 1)
    kcat_produce(env["KAFKA_BOOTSTRAP_SERVERS"], topic, path)
    app_id = unique("ratio")
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "inferwatch", "worker", "--events-topic", topic, "--alerts-topic", f"{topic}-alerts",
         "--dead-letters-topic", f"{topic}-dead", "--app-id", app_id, "--metrics-port", str(listen_port()),
         "--web-port", str(listen_port()), *extra],
        env={**os.environ, **env}, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            if proc.poll() is not None:
                sys.exit(f"the worker exited with {proc.returncode} on {path.name}")
            states = read_partitions(env["REDIS_URL"], app_id)
            if sum(s.next_offset for s in states.values()) >= total:
                return time.perf_counter() - started
            time.sleep(0.05)
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def wrk_valid_rate(port: int, bodies: Path, seconds: float) -> tuple[float, int, int]:
    """(valid decisions per second, requests, non-2xx answers) of closed-loop wrk on 4 connections."""
    res = subprocess.run(["wrk", "-t1", "-c4", f"-d{seconds:.0f}s", "-s", str(HERE / "guard_wrk.lua"),
                          f"http://127.0.0.1:{port}", "--", str(bodies), "0"],
                         capture_output=True, text=True, check=True)
    r = orjson.loads(res.stdout.strip().splitlines()[-1])
    return (r["requests"] - r["not_2xx"]) / r["seconds"], r["requests"], r["not_2xx"]


def http_ratio(clean: Path, seconds: float, runs: int) -> None:
    import yaml

    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "rules.yaml"
        config.write_text(yaml.safe_dump(RULES))
        good = [x for x in clean.read_bytes().splitlines()[:5000] if x.strip()]
        files = {"clean": Path(tmp) / "clean.jsonl", "half": Path(tmp) / "half.jsonl"}
        files["clean"].write_bytes(b"\n".join(good) + b"\n")
        files["half"].write_bytes(b"".join(x + b"\n" + BAD[i % len(BAD)] + b"\n" for i, x in enumerate(good)))
        port = listen_port()
        proc = subprocess.Popen([sys.executable, "-m", "inferwatch", "guard", "--config", str(config),
                                 "--http", f"127.0.0.1:{port}"], cwd=ROOT, stderr=subprocess.DEVNULL)
        try:
            _wait_port(port)
            wrk_valid_rate(port, files["clean"], 2)  # warm-up
            clean_runs, half_runs = paired(runs, lambda: wrk_valid_rate(port, files["clean"], seconds),
                                           lambda: wrk_valid_rate(port, files["half"], seconds))
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    ratios = sorted(h[0] / c[0] for c, h in zip(clean_runs, half_runs))
    c = statistics.median(r[0] for r in clean_runs)
    h, requests, refused = sorted(half_runs)[len(half_runs) // 2]
    print(f"http guard, closed loop, 4 connections x {seconds:.0f} s, median of {runs} pairs: clean {c:,.0f} "
          f"decisions/s; half invalid {h:,.0f} valid decisions/s ({refused:,} of {requests:,} answered 400); "
          f"ratio {statistics.median(ratios):.2f} (pairs {ratios[0]:.2f}-{ratios[-1]:.2f}; target >= 0.5)")


def paired(runs: int, first, second) -> tuple[list[float], list[float]]:
    """``runs`` pairs of timings, A B A B, so that a slow minute of the machine hits both alike."""
    a, b = [], []
    for _ in range(runs):
        a.append(first())
        b.append(second())
    return a, b


def summary(name: str, n: int, base: str, base_s: list[float], other: str, other_s: list[float]) -> str:
    ratios = sorted(x / y for x, y in zip(base_s, other_s))
    mid = statistics.median
    return (f"worker, {n:,} events, median of {len(ratios)} pairs: {base} {mid(base_s):.2f} s ({n / mid(base_s):,.0f} "
            f"events/s); {other} {mid(other_s):.2f} s ({n / mid(other_s):,.0f} {name}/s); ratio {mid(ratios):.2f} "
            f"(pairs {ratios[0]:.2f}-{ratios[-1]:.2f}; target >= 0.5)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--model-events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3, help="pairs of worker runs; the medians are printed")
    args = parser.parse_args()
    paths = write_files(args.events)
    http_ratio(paths["clean"], args.seconds, args.runs)
    env, _ = services_up()
    n = args.events
    clean, half = paired(args.runs, lambda: worker_seconds(env, paths["clean"], n),
                         lambda: worker_seconds(env, paths["half"], 2 * n))
    print(summary("valid events", n, "clean", clean, f"with {n:,} invalid messages between them", half))
    one_path, many_path, config = many_models_files(args.model_events)
    m = args.model_events
    one, many = paired(args.runs, lambda: worker_seconds(env, one_path, m, "--config", str(config)),
                       lambda: worker_seconds(env, many_path, m, "--config", str(config)))
    print(summary("events", m, "one model", one, "1,000 models (1,000 events each)", many))


if __name__ == "__main__":
    main()
