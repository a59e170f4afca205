"""The monitoring thread's cost of labels read beside the events, in process (issue 17: what the steady state
of a live worker with a labels topic pays per label, without start-up, Kafka or Redis).

The same 200,000 predictions as ``labels_worker.py`` (a calibrated classifier, labels 2 minutes late, 1:1)
in batches of 20,000, each with its 20,000 labels already read (as the worker's fetch thread gives them),
through ``process_partition_batch`` of a one-partition direct stage: with the labels against without.
Prints the best of ``--runs`` passes each and their ratio, then what a waiting prediction costs in the saved
state and in memory.

Usage: ``python benchmarks/labels_join.py [--events 200000] [--runs 5]``
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from inferwatch.detectors.config import MonitorConfig
from inferwatch.detectors.types import Batch, NumericArray, TextArray
from inferwatch.streams.labels import LabelFeed, PerformanceWatch
from inferwatch.streams.state_store import PartitionState
from inferwatch.streams.worker import Partition, Stage, process_partition_batch
from inferwatch.testing.labelled import labelled

BATCH = 20_000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        events, labels = labelled(Path(tmp), n=args.events)
        ev = [line for line in events.read_bytes().splitlines() if line.strip()]
        lb = [line for line in labels.read_bytes().splitlines() if line.strip()]
    config = MonitorConfig()
    stage = Stage("direct", "events", "app", "app", events="events", labels="labels", label_partitions=1)
    batches = [(list(range(i, min(i + BATCH, len(ev)))), ev[i:i + BATCH],
                {0: (list(range(i, min(i + BATCH, len(lb)))), lb[i:i + BATCH], [LabelFeed.from_lines(lb[i:i + BATCH])])})
               for i in range(0, len(ev), BATCH)]

    def run(with_labels: bool) -> float:
        part = Partition("events", 0, PartitionState(), -1)
        started = time.perf_counter()
        for offsets, values, read in batches:
            process_partition_batch(config, part, offsets, values, read if with_labels else None, stage)
        return time.perf_counter() - started

    times: dict[bool, list[float]] = {False: [], True: []}
    for with_labels in (False, True) * args.runs:
        times[with_labels].append(run(with_labels))
    plain, joined = min(times[False]), min(times[True])
    print(f"{args.events:,} events in batches of {BATCH:,}, best of {args.runs}: without labels {plain:.3f} s, "
          f"with {len(lb):,} labels {joined:.3f} s ({(joined - plain) / len(lb) * 1e6:.2f} us a label); "
          f"ratio {plain / joined:.2f}")
    print(pending_cost())


def pending_cost(n: int = 60_000) -> str:
    """Bytes a waiting prediction costs: in the saved state, and in memory (its id, dict entry and slot)."""
    watch = PerformanceWatch(MonitorConfig(), LabelFeed.empty())
    empty = len(watch.to_bytes())
    ids = TextArray.from_list([f"e{i}" for i in range(n)])
    watch.predictions(Batch("m", ids, np.arange(n, dtype=np.float64),
                            {"prediction": NumericArray(np.random.default_rng(1).random(n))}), np.arange(n))
    wait = watch.joins["m"].waiting
    memory = (sys.getsizeof(wait.slot) + sum(map(sys.getsizeof, wait.slot)) + wait.times.nbytes + wait.places.nbytes
              + sum(c.nbytes + sum(map(sys.getsizeof, c[:wait.used])) for c in wait.values))
    return (f"{n:,} predictions waiting (ids like e12345, one output): {(len(watch.to_bytes()) - empty) / n:.1f} bytes "
            f"each in the saved state, {memory / n:.0f} in memory")


if __name__ == "__main__":
    main()
