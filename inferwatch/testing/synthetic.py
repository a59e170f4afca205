"""A synthetic card-fraud model: realistic columns with known distributions.

Heavy tails (amount), integers with ties (age, tenure_days, n_tx_24h), a
categorical mix (country, device), a boolean, a continuous score, missing
values and a model score; optional daily cycle. Used by the bundled demo,
the scenario suite and the benchmarks, always with fixed seeds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import orjson

COUNTRIES = ("US", "GB", "DE", "FR", "ES")
COUNTRY_P = (0.50, 0.20, 0.15, 0.10, 0.05)
DEVICES = ("android", "ios", "web")
DEVICE_P = (0.45, 0.40, 0.15)
START = 1_793_491_200.0  # 2026-11-01T00:00:00Z
RATE = 100.0  # events per second of event time


@dataclass
class Columns:
    """Column arrays of ``n`` events; NaN / None for missing."""

    amount: np.ndarray
    age: np.ndarray
    country: np.ndarray  # object array of str
    device: np.ndarray
    tenure_days: np.ndarray
    n_tx_24h: np.ndarray
    is_new: np.ndarray
    score_a: np.ndarray
    prediction: np.ndarray

    log: dict[str, np.ndarray] | None = None  # real-log columns (see log_columns), when asked for

    def __len__(self) -> int:
        return len(self.amount)

    NUMERIC = ("amount", "age", "tenure_days", "n_tx_24h", "score_a", "prediction")


def generate(n: int, seed: int, period: int | None = None, offset: int = 0) -> Columns:
    """``n`` stationary events; with ``period``, amount and device follow a cycle of that many events."""
    rng = np.random.default_rng(seed)
    t = np.arange(offset, offset + n)
    cycle = np.sin(2 * np.pi * t / period) if period else np.zeros(n)
    amount = np.round(np.exp(rng.normal(3.0 + 0.6 * cycle, 1.0)), 2)
    age = np.clip(np.round(rng.normal(45, 13, n)), 18, 95)
    country = np.array(COUNTRIES, dtype=object)[rng.choice(len(COUNTRIES), n, p=COUNTRY_P)]
    if period:
        web = 0.15 + 0.10 * cycle
        u = rng.random(n)
        idx = np.where(u < web, 2, np.where(u < web + (1 - web) * 0.53, 0, 1))
    else:
        idx = rng.choice(len(DEVICES), n, p=DEVICE_P)
    device = np.array(DEVICES, dtype=object)[idx]
    tenure = np.floor(rng.exponential(700, n))
    tenure[rng.random(n) < 0.02] = np.nan
    n_tx = rng.poisson(2.0, n).astype(float)
    is_new = rng.random(n) < 0.1
    score_a = rng.normal(0.0, 1.0, n)
    prediction = 1 / (1 + np.exp(-rng.normal(-2.0, 1.0, n)))
    return Columns(amount, age, country, device, tenure, n_tx, is_new, score_a, prediction)


def in_sessions(cols: Columns, seed: int, mean_length: float = 14.0) -> Columns:
    """The events as user sessions: runs of 5-50 events (about ``mean_length``) of one user, who keeps one
    country and device and pays nearly one amount (within 2 %); the other columns stay as they were."""
    rng = np.random.default_rng(seed)
    n = len(cols)
    lengths = np.clip(np.round(np.exp(rng.normal(np.log(mean_length), 0.6, n // 5 + 1))), 5, 50).astype(int)
    first = np.repeat(np.cumsum(lengths) - lengths, lengths)[:n]  # each event's session's first event
    amount = np.round(cols.amount[first] * (1 + 0.02 * rng.normal(size=n)), 2)
    return Columns(amount, cols.age, cols.country[first], cols.device[first], cols.tenure_days, cols.n_tx_24h,
                   cols.is_new, cols.score_a, cols.prediction, cols.log)


REGIONS = ("us", "eu", "apac")  # a tag: the segment of an event
REGION_P = (0.6, 0.3, 0.1)
MERCHANTS = 400  # levels of the Zipf-like merchant column
ZIPF_S = 1.1
WORDS = ("card", "declined", "twice", "please", "refund", "the", "order", "arrived", "late", "thanks", "again",
         "support", "charged", "wrong", "amount", "for", "my", "account")


def merchant_p() -> np.ndarray:
    """Shares of the merchant levels: Zipf-like, rank ``k`` has weight ``k ** -ZIPF_S``."""
    w = np.arange(1, MERCHANTS + 1, dtype=np.float64) ** -ZIPF_S
    return w / w.sum()


def log_columns(n: int, seed: int, first_id: int = 0) -> dict[str, np.ndarray]:
    """Columns real inference logs carry: a request id (unique), free text (a customer note, ~60% empty),
    a Zipf-like categorical of 400 levels, a code that is ~5% missing at a stable rate, a boolean, a
    sequence number (it climbs), how long before the event the customer was last seen (seconds,
    log-normal around two minutes: the event's ``last_seen_at`` in epoch ms is its time minus this), and a
    price sent as text (``"24.99"``, ``"N/A"`` 1 % of the time)."""
    rng = np.random.default_rng(seed)
    request_id = np.array([f"req-{first_id + i:09d}-{rng.integers(1 << 30):08x}" for i in range(n)], dtype=object)
    lengths = rng.integers(4, 16, n)
    note = np.array([" ".join(rng.choice(WORDS, k)) for k in lengths], dtype=object)
    note[rng.random(n) < 0.6] = None
    merchant = np.array([f"m{k:03d}" for k in range(MERCHANTS)], dtype=object)[rng.choice(MERCHANTS, n, p=merchant_p())]
    channel = np.array(("pos", "online", "moto"), dtype=object)[rng.choice(3, n, p=(0.5, 0.45, 0.05))]
    channel[rng.random(n) < 0.05] = None
    has_3ds = rng.random(n) < 0.7
    region = np.array(REGIONS, dtype=object)[rng.choice(len(REGIONS), n, p=REGION_P)]
    last_seen_lag = rng.lognormal(np.log(120.0), 1.0, n)
    price = rng.lognormal(np.log(25.0), 1.0, n)
    price_text = np.array([f"{p:.2f}" for p in price], dtype=object)
    price_text[rng.random(n) < 0.01] = "N/A"
    return {"request_id": request_id, "note": note, "merchant": merchant, "channel": channel, "has_3ds": has_3ds,
            "region": region, "seq": first_id + np.arange(n), "last_seen_lag": last_seen_lag, "price": price_text}


def last_seen_at(times: np.ndarray, lag: np.ndarray) -> np.ndarray:
    """Epoch milliseconds (whole) of when the customer was last seen, from the events' times (seconds)."""
    return np.floor((np.asarray(times) - lag) * 1000.0)


def to_lines(cols: Columns, model: str = "card-fraud", first_id: int = 0, first_time: float = START) -> list[bytes]:
    """Serialise to inference events (DESIGN.md section 2), one JSON line each."""
    out = []
    for i in range(len(cols)):
        ts = first_time + (first_id + i) / RATE
        tenure = cols.tenure_days[i]
        out.append(orjson.dumps({
            "event_id": f"e-{first_id + i:08d}",
            "model": model,
            "model_version": "3.1.0",
            "timestamp": _rfc3339(ts),
            "features": {
                "amount": float(cols.amount[i]),
                "age": int(cols.age[i]),
                "country": cols.country[i],
                "device": cols.device[i],
                "tenure_days": None if np.isnan(tenure) else int(tenure),
                "n_tx_24h": int(cols.n_tx_24h[i]),
                "is_new": bool(cols.is_new[i]),
                "score_a": round(float(cols.score_a[i]), 5),
            },
            "prediction": round(float(cols.prediction[i]), 5),
        }))
    return out


def rich_lines(cols: Columns, first_id: int = 0) -> list[bytes]:
    """:func:`to_lines` with the real-log columns (``cols.log``) among the features, named outputs (a score
    and a label) and the region as a tag."""
    assert cols.log is not None
    log, out = cols.log, []
    for i, line in enumerate(to_lines(cols, first_id=first_id)):
        event = orjson.loads(line)
        seen = last_seen_at(START + (first_id + i) / RATE, log["last_seen_lag"][i])
        event["features"].update({
            "request_id": log["request_id"][i], "note": log["note"][i], "merchant": log["merchant"][i],
            "channel": log["channel"][i], "has_3ds": bool(log["has_3ds"][i]), "seq": int(log["seq"][i]),
            "last_seen_at": int(seen), "price": log["price"][i]})
        event["prediction"] = {"score": event["prediction"], "label": "fraud" if event["prediction"] > 0.5 else "ok"}
        event["tags"] = {"region": log["region"][i]}
        out.append(orjson.dumps(event))
    return out


def _rfc3339(ts: float) -> str:
    from inferwatch.detectors.timefmt import rfc3339

    return rfc3339(ts)
