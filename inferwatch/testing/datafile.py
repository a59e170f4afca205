"""Benchmark input files, generated once under benchmarks/data/ (not committed)."""

from __future__ import annotations

from pathlib import Path

from .synthetic import generate, to_lines

DATA = Path(__file__).resolve().parents[2] / "benchmarks" / "data"


def events_file(n: int, seed: int = 5) -> Path:
    """A stationary card-fraud stream of ``n`` events (written in 200k-event parts)."""
    DATA.mkdir(exist_ok=True)
    path = DATA / f"events_{n}.jsonl"
    if path.exists():
        return path
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        for lo in range(0, n, 200_000):
            size = min(200_000, n - lo)
            f.write(b"\n".join(to_lines(generate(size, seed=seed + lo, offset=lo), first_id=lo)) + b"\n")
    tmp.rename(path)
    return path
