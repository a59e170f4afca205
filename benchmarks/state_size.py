"""State size: bytes per model (20 columns), per segment value, and for 1,000 models (issue 16).

``python benchmarks/state_size.py`` runs the pipeline in process over
generated events and measures what a store keeps (``Pipeline.to_parts``):
per model, the part rewritten when a batch touches the model (``model:<name>``)
and the codebook-and-lanes part written once (``fixed:<digest>``); per segment
value, the growth of a model's parts with a segment tag of 8 values; for
1,000 models of 9 columns (``benchmarks/bad_input.py``'s file), the whole
state. With ``REDIS_URL`` set it also saves the 1,000 models' state in that
Redis and reads ``MEMORY USAGE`` of the partition's hash (Redis's own count,
overhead included).
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import numpy as np
import orjson

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bad_input import many_models_files  # noqa: E402

from inferwatch.detectors.config import MonitorConfig  # noqa: E402
from inferwatch.streams.pipeline import Pipeline  # noqa: E402

EVENTS = 20_000  # past the default warm-up (10,000): the state of a calibrated model


def events_20_columns(n: int, seed: int, regions: int = 0) -> list[bytes]:
    """12 numeric, 6 categorical (up to 30 labels), 2 boolean features and a score; a ``region`` tag."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        features: dict = {f"x{k}": round(float(rng.lognormal(k % 4, 1.0)), 3) for k in range(12)}
        features.update({f"c{k}": f"v{int(rng.zipf(1.6)) % (5 * (k + 1))}" for k in range(6)})
        features.update({f"b{k}": bool(rng.random() < 0.1 * (k + 1)) for k in range(2)})
        event = {"event_id": f"e-{i}", "model": "m", "timestamp": 1_793_491_200 + i / 100, "features": features,
                 "prediction": round(float(rng.random()), 4)}
        if regions:
            event["tags"] = {"region": f"r{i % regions}"}
        out.append(orjson.dumps(event))
    return out


def stored(lines: list[bytes], config: MonitorConfig, step: int = 2_000) -> tuple[bytes, dict[str, bytes]]:
    """What a store keeps after the whole stream: the head and every field."""
    pipe = Pipeline.build(config, lines[:256])
    for lo in range(0, len(lines), step):
        pipe.step(lines[lo:lo + step])
    return pipe.to_parts(everything=True)


def parts_of(lines: list[bytes], config: MonitorConfig, step: int = 2_000) -> tuple[int, int, int]:
    """(head bytes, bytes of the models' own parts, bytes of the fixed parts) after the whole stream."""
    head, fields = stored(lines, config, step)
    own = sum(len(v) for k, v in fields.items() if k.startswith("model:"))
    fixed = sum(len(v) for k, v in fields.items() if k.startswith("fixed:"))
    return len(head), own, fixed


def redis_usage(url: str, head: bytes, fields: dict[str, bytes]) -> int:
    from inferwatch.streams.state_store import PartitionState, RedisStateStore

    async def run() -> int:
        store = RedisStateStore(url, namespace="state-size")
        try:
            await store.reset("t", 0)
            await store.save("t", 0, PartitionState(next_offset=1, pipeline=head), -1, fields)
            client = await store._connect()
            return int(await client.memory_usage(store.key("t", 0), samples=0))
        finally:
            await store.close()

    return asyncio.run(run())


def main() -> None:
    plain = parts_of(events_20_columns(EVENTS, 1), MonitorConfig())
    print(f"one model, 20 features and a prediction, {EVENTS:,} events: own part {plain[1]:,} bytes "
          f"(rewritten when a batch touches the model), fixed part {plain[2]:,} bytes (written once), "
          f"head {plain[0]:,} bytes")
    regions = 8
    by_region = MonitorConfig.model_validate({"default": {"segments": ["region"]}})
    tagged = parts_of(events_20_columns(EVENTS, 1, regions), by_region)
    print(f"with a segment tag of {regions} values (each with a baseline of its own): own part {tagged[1]:,} bytes, "
          f"fixed part {tagged[2]:,} bytes: per segment value {(tagged[1] - plain[1]) / regions:,.0f} + "
          f"{(tagged[2] - plain[2]) / regions:,.0f} bytes")
    _, many, config_path = many_models_files(1_000_000)
    import yaml

    config = MonitorConfig.model_validate(yaml.safe_load(config_path.read_text()))
    lines = many.read_bytes().splitlines()
    head_bytes, own, fixed = parts_of(lines, config, 131_072)
    print(f"1,000 models (9 columns each, 1,000 events each): own parts {own:,} bytes ({own / 1000:,.0f} a model), "
          f"fixed parts {fixed:,} bytes ({fixed / 1000:,.0f} a model), head {head_bytes:,} bytes")
    url = os.environ.get("REDIS_URL")
    if url:
        used = redis_usage(url, *stored(lines, config, 131_072))
        print(f"in Redis (MEMORY USAGE of the partition's hash): {used:,} bytes ({used / 1000:,.0f} a model)")


if __name__ == "__main__":
    main()
