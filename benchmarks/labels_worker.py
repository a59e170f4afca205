"""The live worker's throughput with a labels topic (1:1) against without, whole processes (issue 17).

The same 200,000 predictions (``inferwatch.testing.labelled``, a calibrated
classifier, labels 2 minutes late), of a model with ``--features`` features
(by default each of 1, the worst case: a label costs as much as the event
it labels, and 10, a production model's log), on an events topic of ``--partitions``
partitions (2 by default: a worker routes them by model with or without
labels; on 1, it reads them directly, and with labels reads the labels topic
beside them); the labels on a topic of their own. Each run is a fresh ``inferwatch worker``
from its launch
until every event is counted in Redis and, with ``--labels-topic``, every
label that the events' clock reached is joined: start-up, group joins and
calibrations are in it. Target: 0.7 or more.

Usage: ``python benchmarks/labels_worker.py [--events 200000] [--runs 3] [--partitions 2] [--features 1,10]``; uses
``KAFKA_BOOTSTRAP_SERVERS`` and ``REDIS_URL`` or starts ``scripts/services``.
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

ROOT = Path(__file__).resolve().parent.parent

from inferwatch.streams.labels import LabelFeed  # noqa: E402
from inferwatch.streams.state_store import read_partitions  # noqa: E402
from inferwatch.streams.status import collect  # noqa: E402
from inferwatch.testing.labelled import labelled  # noqa: E402
from inferwatch.testing.services import create_topic, kcat_produce, listen_port, services_up, unique  # noqa: E402


def run_worker(env: dict, events_topic: str, total: int, labels_topic: str | None, due: int) -> float:
    """Seconds from a worker's launch to every event counted (and ``due`` labels joined, with labels)."""
    app_id = unique("labels-bench")
    extra = ["--labels-topic", labels_topic] if labels_topic else []
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "inferwatch", "worker", "--events-topic", events_topic, "--alerts-topic",
         f"{events_topic}-alerts", "--dead-letters-topic", f"{events_topic}-dead", "--app-id", app_id,
         "--metrics-port", str(listen_port()), "--web-port", str(listen_port()), "--idle-seconds", "1", *extra],
        env={**os.environ, **env}, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            if proc.poll() is not None:
                sys.exit(f"the worker exited with {proc.returncode}")
            counted = sum(s.events + s.dead_letters for s in read_partitions(env["REDIS_URL"], app_id).values())
            if counted >= total:
                if not labels_topic:
                    return time.perf_counter() - started
                joins = collect(env["REDIS_URL"], app_id)["labels"].values()
                if sum(j["joined"] for j in joins) >= due:
                    return time.perf_counter() - started
            time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3, help="pairs of worker runs (A B A B); medians printed")
    parser.add_argument("--partitions", type=int, default=2,
                        help="of the events topic: 1 is read directly (no routing), the labels beside it")
    parser.add_argument("--features", default="1,10", help="features per event: one run of pairs for each")
    args = parser.parse_args()
    env, _ = services_up()
    for features in [int(k) for k in args.features.split(",")]:
        compare(env, args, features)


def compare(env: dict, args: argparse.Namespace, features: int) -> None:
    """Pairs of runs (without labels, with them) over one labelled stream of a model with ``features``."""
    bootstrap = env["KAFKA_BOOTSTRAP_SERVERS"]
    with tempfile.TemporaryDirectory() as tmp:
        events, labels = labelled(Path(tmp), n=args.events, features=features)
        last = orjson.loads(events.read_bytes().splitlines()[-1])["timestamp"]
        clock = LabelFeed.from_lines([orjson.dumps({"event_id": "x", "model": "m", "label": 0,
                                                    "timestamp": last})]).times[0]
        due = int((LabelFeed.from_file(labels).times <= clock).sum())  # the labels the events' clock reaches
        events_topic, labels_topic = unique("events"), unique("labels")
        for topic, path, partitions in ((events_topic, events, args.partitions), (labels_topic, labels, 1)):
            create_topic(bootstrap, topic, partitions)
            kcat_produce(bootstrap, topic, path)
        without, with_labels = [], []
        for _ in range(args.runs):
            without.append(run_worker(env, events_topic, args.events, None, 0))
            with_labels.append(run_worker(env, events_topic, args.events, labels_topic, due))
    print(f"{features} feature(s): runs (s), without labels:", " ".join(f"{x:.2f}" for x in without), "; with:",
          " ".join(f"{x:.2f}" for x in with_labels))
    ratios = sorted(a / b for a, b in zip(without, with_labels))
    mid = statistics.median
    print(f"worker, {args.events:,} events of {features} feature(s) over {args.partitions} partition(s), median of "
          f"{args.runs} pairs: without labels {mid(without):.2f} s "
          f"({args.events / mid(without):,.0f} events/s); with a labels topic ({due:,} labels joined) "
          f"{mid(with_labels):.2f} s ({args.events / mid(with_labels):,.0f} events/s); ratio {mid(ratios):.2f} "
          f"(pairs {ratios[0]:.2f}-{ratios[-1]:.2f}; target >= 0.7)", flush=True)


if __name__ == "__main__":
    main()
