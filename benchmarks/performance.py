"""Performance from delayed labels, and its label-free estimate: detection delay against the information bound.

``python benchmarks/performance.py [--seeds 3]``

Each scenario is a whole ``inferwatch replay --file EVENTS --labels LABELS``
(in process) over a stream of :mod:`inferwatch.testing.labelled`, labels 2
minutes late unless said otherwise. The delay is counted in predictions from
the change to the prediction at which the first alert of the scenario's
detector fired (every prediction is labelled, so it is also labelled
predictions); the bound is the delay at which the cumulated KL divergence of
the watched per-event quantity reaches ln(ARL0) (KL from the generator's own
distributions, estimated on 2,000,000 draws for the estimate's column).
The segment scenario's bound is the segment's own change, counted in all
predictions (the segment has a quarter of them). False alarms: firings of
any performance metric, the estimate or coverage
before the change, or anywhere on a no-change stream (every metric is
watched in every scenario). Last, the replay's speed with
labels against without, whole processes, same file.
"""

from __future__ import annotations

import argparse
import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import orjson

from inferwatch.detectors.config import MonitorConfig
from inferwatch.detectors.performance import METRICS
from inferwatch.streams.replay import replay_file
from inferwatch.testing.labelled import labelled

ARL0 = 1e9


def _bernoulli_kl(a: float, b: float) -> float:
    return a * math.log(a / b) + (1 - a) * math.log((1 - a) / (1 - b))


def _error_rate(slope: float = 2.5, squeeze: float = 1.0, draws: int = 2_000_000, intercept: float = 0.0) -> float:
    x = np.random.default_rng(0).normal(0, 1, draws) * squeeze
    p = 1 / (1 + np.exp(-(slope * x - intercept)))
    return float(np.minimum(p, 1 - p).mean())


def _binned_kl(after: np.ndarray, before: np.ndarray, bins: int = 64) -> float:
    edges = np.quantile(before, np.linspace(0, 1, bins + 1))
    a = np.histogram(np.clip(after, edges[0], edges[-1]), edges)[0] + 0.5
    b = np.histogram(before, edges)[0] + 0.5
    a, b = a / a.sum(), b / b.sum()
    return float(np.sum(a * np.log(a / b)))


def _estimate_kl(squeeze: float, slope: float = 2.5, draws: int = 2_000_000) -> float:
    rng = np.random.default_rng(1)

    def expected(s: float) -> np.ndarray:
        p = 1 / (1 + np.exp(-slope * rng.normal(0, 1, draws) * s))
        return np.minimum(p, 1 - p)

    return _binned_kl(expected(squeeze), expected(1.0))


def _classifier_metric(metric: str, flip: float = 0.0, sharpen: bool = False, slope: float = 2.5,
                       draws: int = 2_000_000) -> np.ndarray:
    """Draws of a per-event classifier metric under the generator of ``inferwatch.testing.labelled``."""
    rng = np.random.default_rng(2)
    x = rng.normal(0, 1, draws)
    p = 1 / (1 + np.exp(-slope * x))
    y = (rng.random(draws) < p) ^ (rng.random(draws) < flip)
    score = 1 / (1 + np.exp(-2 * slope * x)) if sharpen else p
    if metric == "log_loss":
        return np.minimum(-np.log(np.where(y, score, 1 - score)), -np.log(1e-6))
    return (score - y) * np.where(score >= 0.5, 1.0, -1.0)  # overconfidence


def _metric_kl(metric: str, **change) -> float:
    return _binned_kl(_classifier_metric(metric, **change), _classifier_metric(metric))


def scenarios() -> list[tuple[str, dict, str | None, float | None, dict | None]]:
    """(name, generator arguments, detector, KL per event after the change, config)."""
    err = _error_rate()
    flipped = err * 0.9 + (1 - err) * 0.1
    drift = {"n": 60_000, "change": 30_000, "flip": 0.10}
    # positives labelled after 30 s, negatives after 5 min (a chargeback before the all-clear), with
    # labels.settle: 6m; the score's intercept makes the two outcomes' error rates differ
    slow_negatives = {"delay": 30.0, "negatives_delay": 300.0, "intercept": 1.5}
    settled = {"default": {"labels": {"settle": "6m"}}}
    skewed_err = _error_rate(intercept=1.5)
    skewed_flip = skewed_err * 0.9 + (1 - skewed_err) * 0.1
    return [
        ("no change", {"n": 200_000}, None, None, None),
        ("overconfident", {"n": 100_000, "overconfident": True}, None, None, None),
        ("concept drift", drift, "error_rate", _bernoulli_kl(flipped, err), None),
        ("concept drift", drift, "log_loss", _metric_kl("log_loss", flip=0.10), None),
        ("concept drift", drift, "overconfidence", _metric_kl("overconfidence", flip=0.10), None),
        ("concept drift in 1 of 4 regions", {"n": 80_000, "change": 40_000, "flip": 0.20,
                                             "regions": ("eu", "us", "apac", "latam"), "flip_region": "eu"},
         "error_rate", _bernoulli_kl(err * 0.8 + (1 - err) * 0.2, err) / 4, {"default": {"segments": ["region"]}}),
        ("concept drift, labels 3 h late", {**drift, "delay": 3 * 3600.0},
         "error_rate", _bernoulli_kl(flipped, err), None),
        ("turns overconfident", {"n": 60_000, "change": 30_000, "sharpen": True}, "overconfidence",
         _metric_kl("overconfidence", sharpen=True), None),
        ("regression error x1.5", {"n": 60_000, "change": 30_000, "regression": True, "noise": 1.5}, "abs_error",
         0.5 * (2.25 - 1 - math.log(2.25)), None),
        ("regression error x1.5", {"n": 60_000, "change": 30_000, "regression": True, "noise": 1.5},
         "squared_error", 0.5 * (2.25 - 1 - math.log(2.25)), None),
        ("regression bias +0.25 SD", {"n": 60_000, "change": 30_000, "regression": True, "bias": 0.25}, "bias",
         0.25 ** 2 / 2, None),
        ("unsure region (no label yet)", {"n": 60_000, "change": 30_000, "squeeze": 0.6, "delay": 86_400.0},
         "estimated_error_rate", _estimate_kl(0.6), None),
        ("labels come 5x later", {"n": 100_000, "change": 20_000, "delay_after": 600.0}, "label_delay", None,
         None),
        ("labels stop", {"n": 80_000, "change": 30_000, "keep": 1.0, "stop": True}, "label_coverage", None,
         {"default": {"labels": {"max_delay": "3m"}}}),
        ("no change, delays exponential", {"n": 100_000, "delay": 60.0, "spread": True}, None, None, None),
        ("no change, a tenth labelled first", {"n": 100_000, "early": 0.1}, None, None, None),
        ("no change, negatives 10x later", {"n": 100_000, **slow_negatives}, None, None, settled),
        ("concept drift, negatives 10x later", {**drift, "n": 100_000, "change": 50_000, **slow_negatives},
         "error_rate", _bernoulli_kl(skewed_flip, skewed_err), settled),
    ]


def run_one(folder: Path, args: dict, detector: str | None, config: dict | None, seed: int) -> tuple[int | None, int]:
    args = dict(args)
    stop = args.pop("stop", False)
    events, labels = labelled(folder, seed=seed, **args)
    change = args.get("change")
    if stop:  # no label for the predictions from the change on
        kept = [line for line in labels.read_bytes().splitlines() if int(orjson.loads(line)["event_id"][1:]) < change]
        labels.write_bytes(b"\n".join(kept) + b"\n")
    out = folder / "alerts.jsonl"
    with open(out, "wb") as f:
        replay_file(events, MonitorConfig.model_validate(config or {}), f, labels=labels)
    watched = {*METRICS, "estimated_error_rate", "label_coverage", "label_delay"}
    delay, false = None, 0
    for a in map(orjson.loads, out.read_bytes().splitlines()):
        if a["status"] != "firing" or a["detector"] not in watched:
            continue
        if change is not None and a["detector"] == detector and a["position"] >= change:
            delay = a["position"] - change if delay is None else delay
        elif change is None or a["position"] < change:
            false += 1
    return delay, false


def estimate_against_realized(folder: Path, window: int = 5_000) -> str:
    """On the calibrated no-change stream: per window of predictions, inferwatch's label-free estimate
    (``calibration_gap``, as the summary computes it) against the realized error rate, in sampling errors."""
    from inferwatch.detectors.performance import calibration_gap

    events, labels = labelled(folder / "estimate", n=200_000, seed=11)
    scores = np.array([orjson.loads(line)["prediction"] for line in events.read_bytes().splitlines()])
    label_of = {r["event_id"]: r["label"] for r in map(orjson.loads, labels.read_bytes().splitlines())}
    truth = [label_of[f"e{i}"] for i in range(len(scores))]
    gaps = []
    for lo in range(0, len(scores), window):
        est, real, se, _ = calibration_gap(scores[lo:lo + window], truth[lo:lo + window])
        gaps.append(abs(est - real) / se)
    gaps_arr = np.array(gaps)
    return (f"estimate against realized error rate, calibrated model, {len(gaps)} windows of {window:,} "
            f"predictions: |estimate - realized| is {np.median(gaps_arr):.2f} sampling errors at the median, "
            f"{gaps_arr.max():.2f} at most; {np.mean(gaps_arr <= 2):.0%} of windows within 2 (95 % expected)")


def speed(folder: Path, runs: int) -> str:
    events, labels = labelled(folder / "speed", n=200_000)
    exe = [sys.executable, "-m", "inferwatch", "replay", "--file", str(events)]

    def timed(extra: list[str]) -> float:
        t0 = time.perf_counter()
        subprocess.run(exe + extra, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return time.perf_counter() - t0

    pairs = [(timed([]), timed(["--labels", str(labels)])) for _ in range(runs)]
    ratio = statistics.median(a / b for a, b in pairs)
    return (f"replay of 200,000 events, whole processes, median of {runs} pairs: without labels "
            f"{statistics.median(a for a, _ in pairs):.2f} s, with 200,000 labels (1:1) "
            f"{statistics.median(b for _, b in pairs):.2f} s; ratio {ratio:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", default="", help="the scenarios whose name holds this text (and no speed run)")
    args = parser.parse_args()
    print(f"budget: ARL0 = {ARL0:.0e}; bound = predictions after the change until the cumulated KL reaches "
          f"ln(ARL0) = {math.log(ARL0):.1f}; {args.seeds} seeds (delay = mean, FA = sum)")
    head = f"{'scenario':32} {'detector':22} {'delay':>7} {'min-max':>11} {'FA':>3} {'bound':>7} {'ratio':>6}"
    print(head)
    print("-" * len(head))
    with tempfile.TemporaryDirectory() as tmp:
        for name, gen, detector, kl, config in scenarios():
            if args.only not in name:
                continue
            results = [run_one(Path(tmp) / f"s{seed}", gen, detector, config, seed) for seed in range(args.seeds)]
            delays = [d for d, _ in results if d is not None]
            false = sum(f for _, f in results)
            bound = math.log(ARL0) / kl if kl else None
            mean = statistics.mean(delays) if delays else None
            text = "-" if detector is None else ("missed" if not delays else f"{mean:.0f}" + (
                f" ({len(results) - len(delays)} missed)" if len(delays) < len(results) else ""))
            spread = f"{min(delays)}-{max(delays)}" if delays else "-"
            ratio = f"{mean / bound:.2f}" if mean is not None and bound else "-"
            print(f"{name:32} {detector or '-':22} {text:>7} {spread:>11} {false:>3} "
                  f"{(f'{bound:.0f}' if bound else '-'):>7} {ratio:>6}", flush=True)
        if not args.only:
            print(estimate_against_realized(Path(tmp)), flush=True)
            print(speed(Path(tmp), args.runs))


if __name__ == "__main__":
    main()
