"""Speed, all in one run on the same file, printed as ratios.

(a) a plain Python loop of ``orjson.loads`` per line;
(b) river ADWIN updated per event on every numeric column (after parsing);
(c) ``inferwatch replay`` end to end (in process: read, decode, core, write);
(d) the core alone on decoded batches, after the warm-up batch that calibrates it.

Usage: ``python benchmarks/speed.py [N_EVENTS]`` (default 500,000). Each figure is
the best of three runs, all in one process.
"""

from __future__ import annotations

import io
import sys
import time
from pathlib import Path

import orjson  # noqa: E402

from inferwatch.detectors.config import MonitorConfig  # noqa: E402
from inferwatch.detectors.monitor import Monitor  # noqa: E402
from inferwatch.streams.decode import Decoder, infer_schema  # noqa: E402
from inferwatch.streams.replay import read_chunks, replay_file, sample_lines  # noqa: E402
from inferwatch.streams.runtime import single_threaded_blas  # noqa: E402
from inferwatch.testing.datafile import events_file  # noqa: E402
from inferwatch.testing.synthetic import Columns  # noqa: E402


def timed(fn, repeat: int = 3):
    """Best of ``repeat`` runs: the machine is shared, the minimum is the least disturbed."""
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 500_000
    path = events_file(n)

    def orjson_loop():
        with open(path, "rb") as f:
            for line in f:
                orjson.loads(line)

    orjson_loop()  # page cache

    numeric = [c for c in Columns.NUMERIC]
    values = {c: [] for c in numeric}
    with open(path, "rb") as f:
        for line in f:
            e = orjson.loads(line)
            for c in numeric:
                v = e["prediction"] if c == "prediction" else e["features"][c]
                values[c].append(v)
    from river.drift import ADWIN

    def adwin_loop():
        dets = {c: ADWIN() for c in numeric}
        for c in numeric:
            update = dets[c].update
            for v in values[c]:
                if v is not None:
                    update(v)

    t_b, _ = timed(adwin_loop)

    cfg = MonitorConfig()
    demo = Path(__file__).resolve().parent.parent / "examples" / "card_fraud_stream.jsonl"
    replay_file(demo, cfg, io.BytesIO())  # compile the kernels once (numba caches them on disk too)
    # (a) and (c) alternate, best of three each: a noisy neighbour hits both alike
    t_a = t_c = float("inf")
    for _ in range(3):
        t_a = min(t_a, timed(orjson_loop, 1)[0])
        elapsed, summary = timed(lambda: replay_file(path, cfg, io.BytesIO()), 1)
        t_c = min(t_c, elapsed)

    decoder = Decoder(infer_schema(sample_lines(path), cfg), cfg.limits)
    batches = [b for first, lines, _ in read_chunks(path, cfg.batch_size) for b in decoder.decode(lines, first).batches]
    def core():
        mon = Monitor(cfg)
        mon.process(batches[0])  # warm-up prefix: the baseline is calibrated here, once
        t = time.perf_counter()
        for b in batches[1:]:
            mon.process(b)
        return time.perf_counter() - t

    steady = sum(len(b) for b in batches[1:])
    with single_threaded_blas():
        t_d = min(core() for _ in range(3))
    t_d *= n / steady  # per-event cost of the steady state, scaled to the whole file

    rate = lambda t: n / t  # noqa: E731
    print(f"events: {n:,} ({path.stat().st_size / 1e6:.0f} MB), {len(numeric)} numeric columns of 9 monitored")
    print(f"(a) orjson.loads loop        {rate(t_a):>12,.0f} events/s")
    print(f"(b) river ADWIN per column   {rate(t_b):>12,.0f} events/s")
    print(f"(c) inferwatch replay        {rate(t_c):>12,.0f} events/s   (c)/(a) = {t_a / t_c:.2f}  target >= 0.5")
    print(f"(d) core on decoded batches  {rate(t_d):>12,.0f} events/s   (d)/(b) = {t_b / t_d:.2f}  target >= 10")
    print(f"replay summary: {summary.as_dict()}")


if __name__ == "__main__":
    main()
