"""Bad input costs little: a stream where half the lines are invalid, against its valid half alone (target >= 0.5).

``python benchmarks/bad_input.py [--events 200000] [--runs 3]`` writes two files:
the valid events alone, and the same events with one invalid line after each
(cycling through broken JSON, a string where a number is expected, a missing
field, an array, a wrong timestamp). It times whole ``inferwatch replay``
processes (start-up included) over each, median of ``--runs``, and prints
valid events per second and their ratio. Also: 1,000 models against one model
per event on 1,000,000 events (1,000 per model), the same way (target >= 0.5).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import orjson

from inferwatch.testing.synthetic import generate, to_lines

DATA = Path(__file__).resolve().parent / "data"
BAD = [
    b'{"event_id": "x", "model": "card-fraud", "timestamp": ',  # cut off
    b'{"event_id":"y","model":"card-fraud","timestamp":"2026-11-01T00:00:00Z","features":{"amount":"cheap"}}',
    b'{"event_id":"z","timestamp":"2026-11-01T00:00:00Z","features":{"amount":1.0}}',
    b'[1, 2, 3]',
    b'{"event_id":"w","model":"card-fraud","timestamp":"yesterday","features":{"amount":1.0}}',
]


def write_files(n: int) -> dict[str, Path]:
    DATA.mkdir(exist_ok=True)
    paths = {name: DATA / f"bad_input_{name}_{n}.jsonl" for name in ("clean", "half")}
    if all(p.exists() for p in paths.values()):
        return paths
    lines = to_lines(generate(n, seed=11), first_id=0)
    paths["clean"].write_bytes(b"\n".join(lines) + b"\n")
    paths["half"].write_bytes(b"".join(line + b"\n" + BAD[i % len(BAD)] + b"\n" for i, line in enumerate(lines)))
    return paths


def many_models_files(n: int, models: int = 1000) -> tuple[Path, Path, Path]:
    """(one model, ``models`` models in turn, config): ``n`` events each, 200 warm-up events per model."""
    one, many = DATA / f"models_one_{n}.jsonl", DATA / f"models_many_{n}.jsonl"
    config = DATA / "many_models.yaml"
    config.write_text(f"default: {{warmup_events: 200}}\nlimits: {{max_models: {2 * models}}}\n")
    if one.exists() and many.exists():
        return one, many, config
    lines = to_lines(generate(n, seed=11), first_id=0)
    one.write_bytes(b"\n".join(lines) + b"\n")
    renamed = []
    for i, line in enumerate(lines):
        event = orjson.loads(line)
        event["model"] = f"model-{i % models:04d}"
        renamed.append(orjson.dumps(event))
    many.write_bytes(b"\n".join(renamed) + b"\n")
    return one, many, config


def timed(path: Path, runs: int, *extra: str) -> float:
    exe = shutil.which("inferwatch") or sys.exit("inferwatch is not on the PATH: pip install -e . first")
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([exe, "replay", "--file", str(path), *extra], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def guard_ratio(clean: Path, runs: int, n: int = 10_000) -> None:
    """The in-process guard's batch path (as the HTTP and topic guards call it), clean vs half invalid."""
    from inferwatch.detectors.config import MonitorConfig
    from inferwatch.streams.guard import Guard

    guard = Guard(MonitorConfig.model_validate({"default": {
        "columns": {"amount": {"type": "numeric"}, "country": {"type": "categorical"},
                    "prediction": {"type": "numeric"}},
        "rules": [{"kind": "range", "field": "prediction", "min": 0, "max": 0.9, "action": "fix"},
                  {"kind": "expression", "expression": 'amount > 20000 and country not in ["US"]',
                   "action": "block"}]}}))
    good = clean.read_bytes().splitlines()[:n]
    half = [x for i, line in enumerate(good) for x in (line, BAD[i % len(BAD)])]
    timing = {}
    for name, lines in (("clean", good), ("half", half)):
        best = []
        for _ in range(runs):
            t0 = time.perf_counter()
            guard.check_batch(lines)
            best.append(time.perf_counter() - t0)
        timing[name] = statistics.median(best)
    print(f"guard check_batch, {n:,} valid events: clean {n / timing['clean']:,.0f} events/s; with {n:,} invalid "
          f"between them {n / timing['half']:,.0f} valid events/s; ratio {timing['clean'] / timing['half']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--model-events", type=int, default=1_000_000)
    args = parser.parse_args()
    paths = write_files(args.events)
    n = args.events
    clean, half = timed(paths["clean"], args.runs), timed(paths["half"], args.runs)
    print(f"replay, {n:,} valid events: clean {clean:.2f} s ({n / clean:,.0f} events/s); with {n:,} invalid lines "
          f"between them {half:.2f} s ({n / half:,.0f} valid events/s); ratio {clean / half:.2f} (target >= 0.5)")
    guard_ratio(paths["clean"], args.runs)
    m = args.model_events
    one_path, many_path, config = many_models_files(m)
    one = timed(one_path, args.runs, "--config", str(config))
    many = timed(many_path, args.runs, "--config", str(config))
    print(f"replay, {m:,} events: one model {one:.2f} s ({m / one:,.0f} events/s); 1,000 models (1,000 events each) "
          f"{many:.2f} s ({m / many:,.0f} events/s); ratio {one / many:.2f} (target >= 0.5)")


if __name__ == "__main__":
    main()
