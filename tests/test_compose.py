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
    assert {"kafka", "redis", "prometheus", "alertmanager"} <= set(SERVICES) and len(WORKERS) == 2
    for name, svc in SERVICES.items():
        assert "healthcheck" in svc and svc["healthcheck"]["test"], name
    env = SERVICES["kafka"]["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"].startswith(f"{env['KAFKA_NODE_ID']}@kafka:")
    assert "CONTROLLER" in env["KAFKA_LISTENERS"] and env["KAFKA_CONTROLLER_LISTENER_NAMES"] == "CONTROLLER"
    assert any(v.endswith(env["KAFKA_LOG_DIRS"]) for v in SERVICES["kafka"]["volumes"])
    redis_cmd = " ".join(SERVICES["redis"]["command"])
    assert "--appendonly yes" in redis_cmd and "--aclfile" in redis_cmd
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
    assert svc["environment"]["REDIS_URL"].startswith("redis://:${REDIS_PASSWORD")  # Redis asks for a password
    assert svc["environment"]["REDIS_URL"].endswith("@redis:6379/0")
    assert svc["depends_on"] == {name: {"condition": "service_healthy"} for name in ("kafka", "redis", "alertmanager")}
    metrics_port = command[command.index("--metrics-port") + 1]
    assert "ports" not in svc and metrics_port in svc["expose"]  # scraped inside the network, not published
    assert metrics_port in " ".join(svc["healthcheck"]["test"])
    scrape = yaml.safe_load((ROOT / "examples/prometheus/prometheus.yml").read_text())["scrape_configs"]
    assert any(f"{worker}:{metrics_port}" in t for job in scrape for c in job["static_configs"] for t in c["targets"])
    alertmanager = SERVICES["alertmanager"]
    port = alertmanager["ports"][0].rsplit(":", 1)[-1]
    assert command[command.index("--alertmanager-url") + 1] == f"http://alertmanager:{port}"


def test_nothing_is_published_without_a_reason():
    """Redis is not published; Kafka only through its SASL listener; the UIs on the host's loopback only."""
    assert "ports" not in SERVICES["redis"]
    kafka = SERVICES["kafka"]
    env = kafka["environment"]
    protocols = dict(item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    listeners = {item.split("://")[0]: item.rsplit(":", 1)[1] for item in env["KAFKA_LISTENERS"].split(",")}
    for published in kafka["ports"]:
        port = published.split(":")[-1]
        name = next(n for n, p in listeners.items() if p == port)
        assert protocols[name].startswith("SASL_"), f"Kafka's {name} listener is published without authentication"
        assert env[f"KAFKA_LISTENER_NAME_{name}_SASL_ENABLED_MECHANISMS"] == "PLAIN"
    for name in ("prometheus", "alertmanager"):
        assert all(p.startswith("127.0.0.1:") for p in SERVICES[name]["ports"]), name


def test_prometheus_and_alertmanager_configs_are_valid():
    """The real checkers: Debian's promtool on the Prometheus config (and the rules it loads), amtool on
    Alertmanager's; the mounted folders hold them."""
    import shutil
    import subprocess

    from test_worker import promtool

    for name, path in (("prometheus", "examples/prometheus"), ("alertmanager", "examples/alertmanager")):
        host, container = SERVICES[name]["volumes"][0].split(":")[:2]
        assert (ROOT / host).resolve() == (ROOT / path).resolve()
        assert any(container in arg for arg in SERVICES[name]["command"])
    res = subprocess.run([promtool(), "check", "config", "prometheus.yml"], cwd=ROOT / "examples/prometheus",
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    amtool = shutil.which("amtool")
    assert amtool, "amtool (Debian's prometheus-alertmanager) is not installed"
    res = subprocess.run([amtool, "check-config", "alertmanager.yml"], cwd=ROOT / "examples/alertmanager",
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr


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
