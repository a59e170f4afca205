import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import os  # noqa: E402

import pytest  # noqa: E402

from services import services_down, services_up  # noqa: E402


@pytest.fixture(scope="session")
def services():
    """Real Kafka (KRaft) and Redis: from the environment, or started by scripts/services."""
    env, started = services_up()
    yield env
    if started and not os.environ.get("INFERWATCH_KEEP_SERVICES"):
        services_down()
