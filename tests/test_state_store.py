"""The Redis state store on a real Redis: state and offset move together, stale writers are refused."""

import asyncio

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


def test_status_shows_segments_and_what_the_config_names_but_never_came(services):
    """A worker's saved parts read back by ``inferwatch status``: per-segment detectors, never-seen names."""
    import orjson

    from inferwatch.detectors.config import MonitorConfig
    from inferwatch.streams.pipeline import Pipeline
    from inferwatch.streams.status import collect

    config = MonitorConfig.model_validate({
        "default": {"segments": ["region"], "warmup_events": 2400},
        "models": {"ghost": {}, "m": {"columns": {"absent": {"type": "numeric"}}}}})
    lines = [orjson.dumps({"event_id": f"e{i}", "model": "m", "timestamp": 1_793_491_200 + i,
                           "features": {"x": i % 7}, "tags": {"region": "eu" if i % 2 else "us"}}) for i in range(3000)]
    pipe = Pipeline.build(config, lines)
    pipe.step(lines)
    head, fields = pipe.to_parts()
    app_id = unique("status")

    async def save():
        store = RedisStateStore(services["REDIS_URL"], namespace=app_id)
        try:
            await store.save("t", 0, PartitionState(next_offset=3000, pipeline=head, events=3000), -1, fields)
        finally:
            await store.close()

    asyncio.run(save())
    report = collect(services["REDIS_URL"], app_id, config=config)
    segments = report["models"]["m"]["segments"]
    assert sorted(segments) == ["region=eu", "region=us"] and segments["region=eu"]["events"] == 1500
    assert any(name.startswith("x/") for name in segments["region=us"]["detectors"])
    assert report["never_seen"] == ["model 'ghost'", "column 'absent' of model 'm'"]
