"""Regenerate the bundled demo: ``python examples/generate_demo.py``.

``card_fraud_reference.jsonl``: 10,000 events of a healthy card-fraud model.
``card_fraud_stream.jsonl``: 30,000 events of the same model where, from
event 12,000, an upstream job sends ``amount`` in cents (x100); from event
20,000 a new country (BR) appears in 6% of events; and 15 lines of the
stream are broken (bad JSON, wrong types, a missing field).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "benchmarks"))

from synthetic import generate, to_lines  # noqa: E402

UNIT_BUG_AT, NEW_COUNTRY_AT, N = 12_000, 20_000, 30_000


def main() -> None:
    ref = generate(10_000, seed=11)
    (HERE / "card_fraud_reference.jsonl").write_bytes(b"\n".join(to_lines(ref)) + b"\n")
    cols = generate(N, seed=12)
    cols.amount[UNIT_BUG_AT:] = np.round(cols.amount[UNIT_BUG_AT:] * 100, 0)
    rng = np.random.default_rng(13)
    new = np.flatnonzero(rng.random(N) < 0.06)
    cols.country[new[new >= NEW_COUNTRY_AT]] = "BR"
    lines = to_lines(cols, first_id=10_000)
    broken = [
        b'{"event_id":"bad-1","model":"card-fraud","timestamp":NaN,"features":{"amount":12.5}}',
        b'{"event_id":"bad-2","model":"card-fraud","features":{"amount":12.5}}',
        b'{"event_id":"bad-3","model":"card-fraud","timestamp":"yesterday","features":{"amount":1}}',
        b'{"event_id":"bad-4","model":"card-fraud","timestamp":"2026-11-01T01:00:00Z","features":{"amount":"12,50"}}',
        b'{"event_id":"bad-5","model":"card-fraud","timestamp":"2026-11-01T01:00:00Z","features":[1,2,3]}',
        b'this is not json',
        b'{"event_id":"bad-7","model":"card-fraud","timestamp":"2026-11-01T01:00:00Z","features":{"age":1e999}}',
    ]
    for k, i in enumerate(range(1_500, N, 2_000)):
        lines.insert(i, broken[k % len(broken)])
    (HERE / "card_fraud_stream.jsonl").write_bytes(b"\n".join(lines) + b"\n")


if __name__ == "__main__":
    main()
