"""Replay speed on real-log streams, whole processes, against a plain ``orjson.loads`` loop (issue 15).

Two files of ``--events`` events (default 500,000): a **rich** stream (13
features: an id, free text, a 400-level Zipf column, a 5 %-missing code, a
boolean and the card-fraud columns; named outputs; a region tag) and a
**plain** one (the eight card-fraud features and a score). For each: the
median of ``--runs`` whole ``inferwatch replay`` processes (start-up
included) and of whole ``python -c`` processes that only ``orjson.loads``
every line; the ratio loop / replay (target: rich >= 0.5, plain >= 0.6).

``--floors`` adds two whole processes that do part of a replay's work: the
start-up (importing what a replay imports, nothing read) and the reader
(polars' ``read_ndjson`` of the whole file, nothing else): what a replay
cannot do without, against the time the target leaves it.

Usage: ``python benchmarks/log_speed.py [--events 500000] [--runs 3] [--floors]``.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from inferwatch.testing.synthetic import generate, log_columns, rich_lines, to_lines

DATA = Path(__file__).resolve().parent / "data"
LOOP = "import orjson,sys\nfor line in open(sys.argv[1], 'rb'):\n    orjson.loads(line)\n"
START_UP = "import inferwatch.streams.cli, inferwatch.streams.replay"
READER = "import polars,sys\npolars.read_ndjson(sys.argv[1])\n"


def rich_events(n: int) -> list[bytes]:
    cols = generate(n, seed=21)
    cols.log = log_columns(n, seed=22)
    return rich_lines(cols)


def files(n: int) -> dict[str, Path]:
    DATA.mkdir(exist_ok=True)
    paths = {"rich": DATA / f"log_rich_{n}.jsonl", "plain": DATA / f"log_plain_{n}.jsonl"}
    if not paths["rich"].exists():
        paths["rich"].write_bytes(b"\n".join(rich_events(n)) + b"\n")
    if not paths["plain"].exists():
        paths["plain"].write_bytes(b"\n".join(to_lines(generate(n, seed=21))) + b"\n")
    return paths


def median_seconds(cmd: list[str], runs: int) -> float:
    times = []
    for _ in range(runs + 1):  # the first run warms the caches up and is not counted
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return statistics.median(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--floors", action="store_true", help="also time the start-up and the reader alone")
    args = parser.parse_args()
    exe = shutil.which("inferwatch") or sys.exit("inferwatch is not on the PATH: pip install -e . first")
    for name, path in files(args.events).items():
        loop = median_seconds([sys.executable, "-c", LOOP, str(path)], args.runs)
        replay = median_seconds([exe, "replay", "--file", str(path)], args.runs)
        target = 0.5 if name == "rich" else 0.6
        print(f"{name:5} {args.events:,} events: orjson loop {loop:.2f} s, inferwatch replay {replay:.2f} s; "
              f"ratio {loop / replay:.2f} (target >= {target})")
        if args.floors:
            start = median_seconds([sys.executable, "-c", START_UP], args.runs)
            reader = median_seconds([sys.executable, "-c", READER, str(path)], args.runs)
            print(f"      start-up alone {start:.2f} s, polars reader alone {reader:.2f} s: together "
                  f"{start + reader:.2f} s against the {loop / target:.2f} s the target leaves a replay")


if __name__ == "__main__":
    main()
