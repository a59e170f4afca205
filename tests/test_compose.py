"""docker-compose.yml, checked as far as can be done without a Docker engine.

Structure (Kafka in KRaft, Redis with AOF, two workers, health checks,
start order) and that everything it names in this project exists: the
worker's sub-command and every option, the environment variables the CLI
reads, the mounted config (valid), the Dockerfile and what it copies.
"""

from pathlib import Path

import click
import pytest
import typer.main
import yaml

from inferwatch.streams.cli import app
from inferwatch.streams.config_file import load_config

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
WORKERS = [name for name in SERVICES if name.startswith("worker")]


def cli_command(name: str) -> click.Command:
    group = typer.main.get_command(app)
    return group.commands[name]


def test_services_and_health_checks():
    assert {"kafka", "redis"} <= set(SERVICES) and len(WORKERS) == 2
    for name, svc in SERVICES.items():
        assert "healthcheck" in svc and svc["healthcheck"]["test"], name
    env = SERVICES["kafka"]["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"].startswith(f"{env['KAFKA_NODE_ID']}@kafka:")
    assert "CONTROLLER" in env["KAFKA_LISTENERS"] and env["KAFKA_CONTROLLER_LISTENER_NAMES"] == "CONTROLLER"
    assert any(v.endswith(env["KAFKA_LOG_DIRS"]) for v in SERVICES["kafka"]["volumes"])
    redis_cmd = SERVICES["redis"]["command"]
    assert redis_cmd[redis_cmd.index("--appendonly") + 1] == "yes"
    assert any(v.endswith(":/data") for v in SERVICES["redis"]["volumes"])
    assert set(COMPOSE["volumes"]) >= {"kafka-data", "redis-data"}


@pytest.mark.parametrize("worker", WORKERS)
def test_worker_command_options_and_environment_exist(worker):
    svc = SERVICES[worker]
    command = svc["command"]
    sub = cli_command(command[0])
    known = {opt for p in sub.params for opt in p.opts}
    for token in command[1:]:
        if token.startswith("--"):
            assert token in known, f"{worker}: inferwatch {command[0]} has no option {token}"
    envvars = {p.envvar for p in sub.params if getattr(p, "envvar", None)}
    assert set(svc["environment"]) <= envvars
    assert svc["environment"]["KAFKA_BOOTSTRAP_SERVERS"].split(":")[0] == "kafka"
    assert svc["environment"]["REDIS_URL"].startswith("redis://redis:")
    assert svc["depends_on"] == {"kafka": {"condition": "service_healthy"}, "redis": {"condition": "service_healthy"}}
    metrics_port = command[command.index("--metrics-port") + 1]
    assert any(str(p).endswith(f":{metrics_port}") for p in svc["ports"])
    assert metrics_port in " ".join(svc["healthcheck"]["test"])


def test_each_worker_has_its_own_instance_id():
    """Static group membership: two workers under one instance id would fence each other."""
    ids = [SERVICES[w]["environment"].get("INFERWATCH_INSTANCE_ID") for w in WORKERS]
    assert all(ids) and len(set(ids)) == len(ids)


def test_mounted_config_and_dockerfile_exist():
    worker = SERVICES[WORKERS[0]]
    host, container = worker["volumes"][0].split(":")[:2]
    assert (ROOT / host).is_file() and container in worker["command"]
    load_config(ROOT / host)
    dockerfile = (ROOT / "Dockerfile").read_text()
    for line in dockerfile.splitlines():
        if line.startswith("COPY"):
            for src in line.split()[1:-1]:
                assert (ROOT / src).exists(), src
    assert 'ENTRYPOINT ["inferwatch"]' in dockerfile
