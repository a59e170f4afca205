"""The Redis state store on a real Redis: state and offset move together, stale writers are refused."""

import asyncio

import numpy as np
import pytest

from inferwatch.errors import StateError
from inferwatch.streams.state_store import PartitionState, RedisStateStore, StaleState, StateUnavailable
from inferwatch.testing.services import unique

pytestmark = pytest.mark.integration


def test_compare_and_set_refuses_a_stale_writer(services):
    async def scenario():
        store = RedisStateStore(services["REDIS_URL"], namespace=unique("ns"))
        try:
            state, loaded, fields = await store.load("t", 0)
            assert (state.next_offset, loaded, fields) == (0, -1, {})
            state.next_offset, state.pipeline = 100, b"state-a"
            await store.save("t", 0, state, loaded, {"model:a": b"a1", "model:b": b"b1"})
            again, loaded_again, fields = await store.load("t", 0)
            assert (again.next_offset, again.pipeline, loaded_again) == (100, b"state-a", 100)
            assert fields == {"model:a": b"a1", "model:b": b"b1"}
            state.next_offset = 200
            await store.save("t", 0, state, 100, {"model:b": b"b2"})  # only what changed is written
            assert (await store.load("t", 0))[2] == {"model:a": b"a1", "model:b": b"b2"}
            stale = PartitionState(next_offset=50, pipeline=b"state-b")
            with pytest.raises(StaleState):
                await store.save("t", 0, stale, -1, {"model:a": b"stale"})  # a worker that loaded before the first save
            kept, _, fields = await store.load("t", 0)
            assert kept.pipeline == b"state-a" and fields["model:a"] == b"a1"
            await store.save("t", 0, state, 100, {"model:a": b"late"})  # a retry after a lost reply: nothing written
            assert (await store.load("t", 0))[2]["model:a"] == b"a1"
            assert list(await store.partitions()) == ["t:0"]
            await store.client.hset(store.key("t", 1), mapping={"next": "5", "doc": b"\x93not a state"})
            found = await store.partitions()
            assert isinstance(found["t:1"], StateError) and store.key("t", 1) in str(found["t:1"])
            assert found["t:0"].pipeline == b"state-a"  # an unreadable partition hides no other
            assert (await store.partitions(fields=True))["t:0"][1]["model:b"] == b"b2"
        finally:
            await store.close()

    asyncio.run(scenario())


def test_unreachable_redis_is_state_unavailable():
    async def scenario():
        store = RedisStateStore("redis://127.0.0.1:1/0")
        try:
            with pytest.raises(StateUnavailable):
                await store.load("t", 0)
        finally:
            await store.close()

    asyncio.run(scenario())


def saved_as_a_worker_would(redis_url: str, name: str, config, lines: list[bytes]) -> str:
    """``lines`` through a pipeline, its parts saved as partition ``t:0`` of a new app id (returned)."""
    from inferwatch.streams.pipeline import Pipeline

    pipe = Pipeline.build(config, lines)
    pipe.step(lines)
    head, fields = pipe.to_parts()
    app_id = unique(name)

    async def save():
        store = RedisStateStore(redis_url, namespace=app_id)
        try:
            await store.save("t", 0, PartitionState(next_offset=len(lines), pipeline=head, events=len(lines)), -1,
                             fields)
        finally:
            await store.close()

    asyncio.run(save())
    return app_id


def test_status_shows_segments_and_what_the_config_names_but_never_came(services):
    """A worker's saved parts read back by ``inferwatch status``: per-segment detectors, never-seen names."""
    import orjson

    from inferwatch.detectors.config import MonitorConfig
    from inferwatch.streams.status import collect

    config = MonitorConfig.model_validate({
        "default": {"segments": ["region"], "warmup_events": 2400},
        "models": {"ghost": {}, "m": {"columns": {"absent": {"type": "numeric"}}}}})
    lines = [orjson.dumps({"event_id": f"e{i}", "model": "m", "timestamp": 1_793_491_200 + i,
                           "features": {"x": i % 7}, "tags": {"region": "eu" if i % 2 else "us"}}) for i in range(3000)]
    app_id = saved_as_a_worker_would(services["REDIS_URL"], "status", config, lines)
    report = collect(services["REDIS_URL"], app_id, config=config)
    segments = report["models"]["m"]["segments"]
    assert sorted(segments) == ["region=eu", "region=us"] and segments["region=eu"]["events"] == 1500
    assert any(name.startswith("x/") for name in segments["region=us"]["detectors"])
    assert report["never_seen"] == ["model 'ghost'", "column 'absent' of model 'm'"]


def test_status_shows_the_latest_incident_and_column_statistics_and_can_watch(services, tmp_path):
    """A unit bug's incident, read back by ``status`` (its cause, its columns) with each column's statistics; the
    same view redrawn by ``status --watch`` until interrupted."""
    import os
    import signal
    import subprocess
    import sys
    import threading

    import orjson
    from rich.console import Console

    from inferwatch.detectors.config import MonitorConfig
    from inferwatch.streams.status import collect, render
    from inferwatch.testing.services import wait_until

    rng = np.random.default_rng(5)
    amount = np.round(np.exp(rng.normal(3.0, 1.0, 8000)), 2)
    amount[6000:] *= 100  # cents: a unit bug at event 6,000
    lines = [orjson.dumps({"event_id": f"e{i}", "model": "m", "timestamp": 1_793_491_200 + i,
                           "features": {"amount": float(a), "country": "FR" if i % 3 else "DE"}})
             for i, a in enumerate(amount)]
    config = MonitorConfig.model_validate({"default": {"warmup_events": 4000}})
    app_id = saved_as_a_worker_would(services["REDIS_URL"], "status-incident", config, lines)
    report = collect(services["REDIS_URL"], app_id)
    incident = report["models"]["m"]["incident"]
    assert incident["open"] and incident["columns"] == ["amount"]
    assert incident["cause"].startswith("one upstream column changed units: amount")
    console = Console(record=True, width=200)
    render(report, console)
    text = console.export_text()
    assert "likely cause: one upstream column changed units" in text and "FR 67%" in text

    proc = subprocess.Popen([sys.executable, "-m", "inferwatch", "status", "--redis-url", services["REDIS_URL"],
                             "--app-id", app_id, "--watch", "0.5"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "COLUMNS": "200"})
    seen: list[bytes] = []
    reader = threading.Thread(target=lambda: seen.extend(iter(lambda: proc.stdout.read1(65536), b"")), daemon=True)
    reader.start()
    try:  # two views (it refreshes), then interrupt it as a person would
        wait_until(lambda: b"".join(seen).count(b"likely cause") >= 2 or proc.poll() is not None, 120,
                   "status --watch to show the incident twice")
        assert proc.poll() is None, proc.stderr.read().decode()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
