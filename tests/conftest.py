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


@pytest.fixture(scope="session")
def kafka_sasl():
    """A second real broker whose clients must log in (SASL/PLAIN), started by ``scripts/services kafka-sasl-up``:
    ``KAFKA_SASL_BOOTSTRAP_SERVERS``, ``KAFKA_SASL_USERNAME``, ``KAFKA_SASL_PASSWORD``."""
    import subprocess

    from inferwatch.testing.services import ROOT

    script = str(ROOT / "scripts" / "services")
    out = subprocess.run([script, "kafka-sasl-up"], capture_output=True, text=True, check=True, timeout=600).stdout
    yield dict(line.split("=", 1) for line in out.split())
    if not os.environ.get("INFERWATCH_KEEP_SERVICES"):
        subprocess.run([script, "kafka-sasl-down"], check=True, timeout=120)
