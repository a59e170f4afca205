import os

import pytest

from inferwatch.testing.services import services_down, services_up


@pytest.fixture(scope="session")
def services():
    """Real Kafka (KRaft) and Redis: from the environment, or started by scripts/services."""
    env, started = services_up()
    yield env
    if started and not os.environ.get("INFERWATCH_KEEP_SERVICES"):
        services_down()


@pytest.fixture(scope="session")
def redis_cluster(services):
    """A real three-master Redis Cluster: ``REDIS_CLUSTER_URL``, or started by ``scripts/services cluster-up``."""
    import subprocess

    from inferwatch.testing.services import ROOT

    if os.environ.get("REDIS_CLUSTER_URL"):
        yield os.environ["REDIS_CLUSTER_URL"]
        return
    out = subprocess.run([str(ROOT / "scripts" / "services"), "cluster-up"], capture_output=True, text=True,
                         check=True, timeout=300)
    yield out.stdout.strip().split("=", 1)[1]
    if not os.environ.get("INFERWATCH_KEEP_SERVICES"):
        subprocess.run([str(ROOT / "scripts" / "services"), "cluster-down"], check=True, timeout=120)
