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
