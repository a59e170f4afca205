"""The worker's state on a real three-master Redis Cluster (``scripts/services cluster-up``)."""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys

import orjson
import pytest
from test_worker import DEMO, Worker

from inferwatch.streams.state_store import PartitionState, RedisStateStore, read_partitions
from inferwatch.testing.services import ROOT, create_topic, kcat_consume, kcat_produce, unique, wait_until

pytestmark = pytest.mark.integration


def test_partition_states_spread_over_the_masters_and_read_back_whole(redis_cluster):
    """Each save is one key, so one slot: 12 partitions land on all three masters, and every read sees them."""
    namespace = unique("ns")

    async def run():
        store = RedisStateStore(redis_cluster, namespace)
        try:
            for p in range(12):
                await store.save("t", p, PartitionState(next_offset=p + 1, events=p + 1), -1, {"model:m": b"s"})
            stale = PartitionState(next_offset=99)
            with pytest.raises(Exception, match="moved on"):  # ``next`` is 1 now: a save from -1 is refused
                await store.save("t", 0, stale, -1)
            return store.cluster, await store.load("t", 7)
        finally:
            await store.close()

    cluster, (state, loaded, fields) = asyncio.run(run())
    assert cluster and loaded == 8 and state.events == 8 and fields == {"model:m": b"s"}
    assert sorted(read_partitions(redis_cluster, namespace)) == sorted(f"t:{p}" for p in range(12))
    masters = [line.split()[1].split("@")[0] for line in subprocess.run(
        ["redis-cli", "-u", redis_cluster, "cluster", "nodes"], capture_output=True, text=True, check=True).stdout
        .splitlines() if "master" in line]
    held = [int(subprocess.run(["redis-cli", "-h", m.split(":")[0], "-p", m.split(":")[1], "--scan", "--pattern",
                                f"inferwatch:{namespace}:*"], capture_output=True, text=True, check=True)
                .stdout.count("\n")) for m in masters]
    assert len(masters) == 3 and sum(held) == 12 and all(h > 0 for h in held)


def test_a_worker_on_a_cluster_killed_mid_stream_counts_exactly(services, redis_cluster, tmp_path):
    """Three partitions without keys (events routed by model), state on the cluster, one ``kill -9`` and a
    restart: every event and dead letter counted once, and the alerts of a file replay."""
    bootstrap = services["KAFKA_BOOTSTRAP_SERVERS"]
    topic = unique("cluster")
    create_topic(bootstrap, topic, 3)
    kcat_produce(bootstrap, topic, DEMO)  # no key: the events of the one model land on every partition
    on_cluster = {**services, "REDIS_URL": redis_cluster}
    app_id = unique("app")
    worker = Worker(on_cluster, topic, app_id, tmp_path)
    worker.args += ["--idle-seconds", "1"]
    cut = random.Random(3).randrange(5_000, 25_000)

    def counted() -> int:
        return sum(s.events + s.dead_letters for s in read_partitions(redis_cluster, app_id).values())

    try:
        worker.start()
        wait_until(lambda: worker.alive() and counted() >= cut, 240, f"progress past {cut} events", 0.05)
        worker.kill()
        worker.start()
        wait_until(lambda: worker.alive() and counted() >= 30_015, 240, "every message counted")
    finally:
        worker.stop()
    states = read_partitions(redis_cluster, app_id)
    assert sum(s.events for s in states.values()) == 30_002 and sum(s.dead_letters for s in states.values()) == 13
    alerts = [orjson.loads(m) for m in kcat_consume(bootstrap, f"{topic}-alerts")]
    clean = subprocess.run([sys.executable, "-m", "inferwatch", "replay", "--file", str(DEMO)], capture_output=True,
                           cwd=ROOT, check=True, timeout=300)
    assert {a["alert_id"] for a in alerts} == {orjson.loads(x)["alert_id"] for x in clean.stdout.splitlines()}
    status = subprocess.run([sys.executable, "-m", "inferwatch", "status", "--json", "--app-id", app_id,
                             "--redis-url", redis_cluster, "--bootstrap-servers", bootstrap],
                            capture_output=True, cwd=ROOT, check=True, timeout=60)
    assert orjson.loads(status.stdout)["models"]["card-fraud"]["events"] == 30_002


def test_a_cluster_that_does_not_answer_is_an_outage_to_wait_out(redis_cluster):
    """Every master paused: the store says the state is unavailable (the worker retries), not a crash;
    resumed: the state is there."""
    import os
    import signal

    from inferwatch.errors import StateUnavailable

    pids = [int(p.read_text()) for p in (ROOT / "tests" / ".services" / "cluster").glob("*.pid")]
    if os.environ.get("REDIS_CLUSTER_URL") or len(pids) != 3:
        pytest.skip("the cluster was not started by scripts/services: its servers cannot be paused here")
    namespace = unique("outage")

    async def run():
        store = RedisStateStore(redis_cluster, namespace)
        try:
            await store.save("t", 0, PartitionState(next_offset=7), -1)
            for pid in pids:
                os.kill(pid, signal.SIGSTOP)
            try:
                with pytest.raises(StateUnavailable):
                    await store.load("t", 0)
            finally:
                for pid in pids:
                    os.kill(pid, signal.SIGCONT)
            return await store.load("t", 0)
        finally:
            await store.close()

    state, loaded, _ = asyncio.run(run())
    assert loaded == 7 and state.next_offset == 7
