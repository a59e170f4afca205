"""Labelled streams with known changes, for the performance tests and benchmark.

A binary classifier whose score ``p = sigmoid(slope * x)`` is calibrated
(each label is drawn with probability ``p``), or a regression whose error is
normal, 10 ms between events, each label known ``delay`` seconds after its
event. From ``change`` on, one of: a share ``flip`` of the labels flipped
(concept drift: inputs and scores unchanged), ``x`` squeezed by ``squeeze``
towards 0 where the score is near 0.5 (the unsure region), or the
regression's error scaled by ``noise``, or its predictions shifted by
``bias``, or (``sharpen``) the scores sharpened from then on while the labels
keep following the true probability. ``overconfident``: the scores are
sharpened (not calibrated) from the start. ``regions``: a ``region`` tag,
the regions in turn; ``flip_region``: only that region's labels flip.
``delay_after``: the labels' delay from the change on. ``features``: how
many features an event has (``x`` and, beyond it, unrelated ones as a
production model's log has them: numbers, a ``country`` and an ``is_new``
flag).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import orjson

START = 1_793_491_200.0  # 2026-11-01T00:00:00Z


def stamp(t: float) -> str:
    return datetime.fromtimestamp(t, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def labelled(folder: Path, n: int = 60_000, change: int | None = None, flip: float = 0.0, squeeze: float = 1.0,
             noise: float = 1.0, regression: bool = False, overconfident: bool = False, delay: float = 120.0,
             seed: int = 3, keep: float = 1.0, slope: float = 2.5, model: str = "churn", bias: float = 0.0,
             sharpen: bool = False, regions: tuple[str, ...] = (), flip_region: str | None = None,
             delay_after: float | None = None, features: int = 1, spread: bool = False,
             early: float = 0.0, intercept: float = 0.0, negatives_delay: float | None = None) -> tuple[Path, Path]:
    """Write ``events.jsonl`` and ``labels.jsonl`` (in label-time order) under ``folder``; return their paths.

    ``spread``: each label's delay is exponential with mean ``delay`` (else exactly ``delay``); ``early``: this
    share of the labels is known 30 s before its prediction; ``negatives_delay``: a negative's label comes
    that long after its prediction (a positive's after ``delay``); ``intercept``: ``p = sigmoid(slope * x -
    intercept)``."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, n)
    after = slice(change, None) if change is not None else slice(n, None)
    x[after] *= squeeze
    if regression:
        prediction = 10.0 + 3.0 * x
        scale = np.ones(n)
        scale[after] = noise
        truth: np.ndarray = prediction + rng.normal(0, 1, n) * scale
        prediction[after] += bias
    else:
        p = 1 / (1 + np.exp(-(slope * x - intercept)))
        truth = rng.random(n) < p
        flipped = rng.random(len(truth[after])) < flip
        if flip_region is not None:  # the concept drift of one segment only
            flipped &= (np.array([regions[i % len(regions)] == flip_region for i in range(n)]))[after]
        truth[after] ^= flipped
        prediction = 1 / (1 + np.exp(-2 * slope * x)) if overconfident else p.copy()
        if sharpen:
            prediction[after] = 1 / (1 + np.exp(-2 * slope * x[after]))
    events, labels = [], []
    keep_it = rng.random(n) < keep
    extra = _unrelated(rng, n, features - 1)
    waits = rng.exponential(delay, n) if spread else np.full(n, delay)
    if early:
        waits[rng.random(n) < early] = -30.0
    if negatives_delay is not None and not regression:
        waits[~truth.astype(bool)] = negatives_delay
    for i in range(n):
        t = START + i * 0.01
        event = {"event_id": f"e{i}", "model": model, "timestamp": stamp(t),
                 "features": {"x": round(float(x[i]), 5), **{name: col[i] for name, col in extra.items()}},
                 "prediction": round(float(prediction[i]), 5)}
        if regions:
            event["tags"] = {"region": regions[i % len(regions)]}
        events.append(orjson.dumps(event))
        if keep_it[i]:
            label = round(float(truth[i]), 5) if regression else bool(truth[i])
            wait = delay_after if delay_after is not None and change is not None and i >= change else float(waits[i])
            labels.append((t + wait, orjson.dumps({"event_id": f"e{i}", "model": model,
                                                   "timestamp": stamp(t + wait), "label": label})))
    labels.sort(key=lambda r: r[0])
    folder.mkdir(parents=True, exist_ok=True)
    ev, lab = folder / "events.jsonl", folder / "labels.jsonl"
    ev.write_bytes(b"\n".join(events) + b"\n")
    lab.write_bytes(b"\n".join(line for _, line in labels) + b"\n")
    return ev, lab


def _unrelated(rng: np.random.Generator, n: int, count: int) -> dict[str, list]:
    """``count`` features that the score does not use: numbers ``f1``, ``f2``, ..., then a ``country`` (eight
    of them) and an ``is_new`` flag (20 %) once there are three or more."""
    named = min(count, 2) if count >= 3 else 0
    out: dict[str, list] = {f"f{k}": np.round(rng.normal(k, 1.0, n), 4).tolist() for k in range(1, count - named + 1)}
    if named:
        countries = np.array(["de", "fr", "es", "it", "nl", "pl", "se", "at"])
        out["country"] = countries[rng.integers(0, len(countries), n)].tolist()
        out["is_new"] = (rng.random(n) < 0.2).tolist()
    return out
