"""Kafka that asks for a login over TLS: every inferwatch client takes the same settings (a real broker with a
SASL_SSL listener, PLAIN, certificate from a throw-away CA)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from test_worker import Worker, key, replay_alerts

from inferwatch.errors import ConfigError
from inferwatch.streams.kafka_security import KafkaSecurity
from inferwatch.streams.state_store import read_partitions
from inferwatch.testing.services import ROOT, unique, wait_until

DEMO = ROOT / "examples" / "card_fraud_stream.jsonl"


@pytest.mark.parametrize("env, named", [
    ({"KAFKA_SECURITY_PROTOCOL": "SASL"}, "KAFKA_SECURITY_PROTOCOL"),
    ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_USERNAME": "u"}, "KAFKA_SASL_PASSWORD"),
    ({"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SASL_PASSWORD": "p"}, "KAFKA_SASL_USERNAME"),
    ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": "p",
      "KAFKA_SASL_MECHANISM": "GSSAPI"}, "KAFKA_SASL_MECHANISM"),
    ({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CA_LOCATION": "/nonexistent/ca.pem"}, "KAFKA_SSL_CA_LOCATION"),
    ({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CERTIFICATE_LOCATION": __file__}, "KAFKA_SSL_KEY_LOCATION"),
])
def test_a_wrong_setting_is_refused_naming_the_variable(env, named):
    with pytest.raises(ConfigError) as err:
        KafkaSecurity.from_env(env)
    assert str(err.value).startswith(named)


def test_each_client_library_gets_the_settings_in_its_own_words_and_the_password_never_shows():
    s = KafkaSecurity.from_env({"KAFKA_SECURITY_PROTOCOL": "sasl_ssl", "KAFKA_SASL_MECHANISM": "scram-sha-512",
                                "KAFKA_SASL_USERNAME": "svc", "KAFKA_SASL_PASSWORD": "hunter2"})
    assert s.librdkafka() == {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
                              "sasl.username": "svc", "sasl.password": "hunter2"}
    assert s.kafka_python() == {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
                                "sasl_plain_username": "svc", "sasl_plain_password": "hunter2"}
    credentials = s.faust()["broker_credentials"]
    assert credentials.username == "svc" and credentials.ssl_context is not None
    assert "hunter2" not in repr(s) and "hunter2" not in s.hint()
    assert KafkaSecurity.from_env({}).librdkafka() == {"security.protocol": "PLAINTEXT"}


def test_the_config_file_s_kafka_section_is_checked_at_load_and_the_environment_wins(tmp_path, monkeypatch):
    from inferwatch.streams import kafka_security as ks
    from inferwatch.streams.config_file import load_config

    for var in ks.FILE_FIELDS.values():
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("KAFKA_SASL_PASSWORD", raising=False)
    secret = tmp_path / "kafka-password"
    secret.write_text("hunter2\n")
    config = tmp_path / "monitor.yaml"
    config.write_text(f"kafka:\n  security_protocol: SASL_SSL\n  sasl_username: svc\n"
                      f"  sasl_password_file: {secret}\ndefault:\n  warmup_events: 500\n")
    try:
        assert load_config(config).default.warmup_events == 500
        assert ks.kafka_security().librdkafka()["sasl.password"] == "hunter2"
        monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "")  # set but empty (compose's ${VAR:-}): says nothing
        assert ks.kafka_security().protocol == "SASL_SSL"
        assert ks.child_env()["KAFKA_SASL_PASSWORD_FILE"] == str(secret)  # a child reads the same file
        assert ks.child_env()["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
        monkeypatch.setenv("KAFKA_SASL_USERNAME", "from-env")
        assert ks.kafka_security().librdkafka()["sasl.username"] == "from-env"
        for section, named in (("  security_protocol: TLS\n", "kafka.security_protocol"),
                               ("  sasl_password: hunter2\n", "kafka.sasl_password"),
                               ("  bootstrap: x\n", "kafka.bootstrap"),
                               ("  security_protocol: SASL_SSL\n  sasl_password_file: /nonexistent\n",
                                "kafka.sasl_password_file")):
            config.write_text("kafka:\n" + section)
            with pytest.raises(ConfigError) as err:
                load_config(config)
            assert str(err.value).startswith(f"{config}: {named}"), str(err.value)
            assert "hunter2" not in str(err.value)
    finally:
        ks.use_config_section({})


def test_a_bad_setting_stops_the_command_at_start_naming_it(tmp_path):
    env = {**os.environ, "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SASL_USERNAME": "svc"}
    env.pop("KAFKA_SASL_PASSWORD", None)
    res = subprocess.run([sys.executable, "-m", "inferwatch", "replay", "--topic", "t", "--from", "-1d",
                          "--bootstrap-servers", "127.0.0.1:1"], capture_output=True, env=env, timeout=60)
    assert res.returncode == 2 and b"KAFKA_SASL_PASSWORD" in res.stderr


def _client_env(kafka_sasl: dict, password: str | None = None) -> dict:
    return {"KAFKA_BOOTSTRAP_SERVERS": kafka_sasl["KAFKA_SASL_BOOTSTRAP_SERVERS"],
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_USERNAME": kafka_sasl["KAFKA_SASL_USERNAME"],
            "KAFKA_SASL_PASSWORD": password or kafka_sasl["KAFKA_SASL_PASSWORD"],
            "KAFKA_SSL_CA_LOCATION": kafka_sasl["KAFKA_SSL_CA_LOCATION"]}


def _produce(kafka_sasl: dict, topic: str, path: Path, tmp: Path) -> None:
    """kcat, logged in through a config file (not its command line)."""
    conf = tmp / "kcat.conf"
    conf.write_text("security.protocol=SASL_SSL\nsasl.mechanisms=PLAIN\n"
                    f"sasl.username={kafka_sasl['KAFKA_SASL_USERNAME']}\nsasl.password={kafka_sasl['KAFKA_SASL_PASSWORD']}\n"
                    f"ssl.ca.location={kafka_sasl['KAFKA_SSL_CA_LOCATION']}\n")
    conf.chmod(0o600)
    subprocess.run(["kcat", "-F", str(conf), "-b", kafka_sasl["KAFKA_SASL_BOOTSTRAP_SERVERS"], "-t", topic, "-P", "-l",
                    str(path)], check=True, timeout=120, capture_output=True)


def _consume(kafka_sasl: dict, topic: str, tmp: Path) -> list[dict]:
    """Every record of ``topic`` (none while it does not exist), read by kcat logged in."""
    got = subprocess.run(["kcat", "-F", str(tmp / "kcat.conf"), "-b", kafka_sasl["KAFKA_SASL_BOOTSTRAP_SERVERS"], "-t",
                          topic, "-C", "-e", "-q"], capture_output=True, check=False, timeout=120).stdout
    return [orjson.loads(line) for line in got.splitlines()]


@pytest.mark.integration
def test_replay_and_the_worker_log_in_and_give_the_file_replay_s_alerts(kafka_sasl, services, tmp_path):
    """The demo on a broker that asks for SASL/PLAIN: a topic replay (its reader, and its alerts published to a
    topic) and a live worker (its consumer, producer, topic creation and metadata) with the login in the
    environment give the alerts of the file replay; with a wrong password the replay stops, saying what to
    check, and the password is not printed."""
    topic, app_id = unique("secured"), unique("app")
    _produce(kafka_sasl, topic, DEMO, tmp_path)
    want = key(replay_alerts(DEMO))
    env = {**os.environ, **_client_env(kafka_sasl)}
    res = subprocess.run([sys.executable, "-m", "inferwatch", "replay", "--topic", topic, "--from", "-1d",
                          "--alerts-topic", f"{topic}-replayed"], capture_output=True, env=env, cwd=ROOT, timeout=300)
    assert res.returncode == 0, res.stderr.decode()
    assert key(_consume(kafka_sasl, f"{topic}-replayed", tmp_path)) == want
    # the same from the config file's kafka: section, the password in a file of its own; without kcat on the
    # PATH, so the partitions are read by librdkafka in child processes (they get the section too)
    secret = tmp_path / "kafka-password"
    secret.write_text(kafka_sasl["KAFKA_SASL_PASSWORD"] + "\n")
    config = tmp_path / "secured.yaml"
    config.write_text(f"kafka:\n  security_protocol: SASL_SSL\n  sasl_username: {kafka_sasl['KAFKA_SASL_USERNAME']}\n"
                      f"  sasl_password_file: {secret}\n  ssl_ca_location: {kafka_sasl['KAFKA_SSL_CA_LOCATION']}\n")
    bare = {**{k: v for k, v in os.environ.items() if not k.startswith("KAFKA_")}, "PATH": str(tmp_path),
            "KAFKA_SECURITY_PROTOCOL": ""}  # an empty variable says nothing: the section's protocol holds
    res = subprocess.run([sys.executable, "-m", "inferwatch", "replay", "--topic", topic, "--from", "-1d",
                          "--config", str(config), "--bootstrap-servers", kafka_sasl["KAFKA_SASL_BOOTSTRAP_SERVERS"]],
                         capture_output=True, env=bare, cwd=ROOT, timeout=300)
    assert res.returncode == 0, res.stderr.decode()
    assert key([orjson.loads(line) for line in res.stdout.splitlines() if line.startswith(b"{")]) == want

    w = Worker({**_client_env(kafka_sasl), "REDIS_URL": services["REDIS_URL"]}, topic, app_id, tmp_path)
    total = sum(1 for line in DEMO.read_bytes().splitlines() if line.strip())
    counted = lambda: sum(s.events + s.dead_letters for s in read_partitions(services["REDIS_URL"], app_id).values())  # noqa: E731
    try:
        w.start()
        wait_until(lambda: counted() >= total, 240, "every message counted")
    finally:
        w.stop()
    assert counted() == total
    assert key(_consume(kafka_sasl, f"{topic}-alerts", tmp_path)) == want
    # status reads the end offsets through the login: nothing left to monitor
    shown = subprocess.run([sys.executable, "-m", "inferwatch", "status", "--app-id", app_id, "--json"],
                           capture_output=True, env={**env, "REDIS_URL": services["REDIS_URL"]}, cwd=ROOT, timeout=120)
    assert shown.returncode == 0, shown.stderr.decode()
    assert [p["lag"] for p in orjson.loads(shown.stdout)["partitions"].values()] == [0]

    wrong = {**os.environ, **_client_env(kafka_sasl, password="not-the-password")}
    res = subprocess.run([sys.executable, "-m", "inferwatch", "replay", "--topic", topic, "--from", "-1d"],
                         capture_output=True, env=wrong, cwd=ROOT, timeout=300)
    assert res.returncode != 0 and b"KAFKA_SASL_PASSWORD" in res.stderr and b"not-the-password" not in res.stderr
    # a client without the login (plaintext, or TLS without SASL) is refused, and told what to set
    for protocol in ("PLAINTEXT", "SSL"):
        bare = {**os.environ, **_client_env(kafka_sasl), "KAFKA_SECURITY_PROTOCOL": protocol}
        res = subprocess.run([sys.executable, "-m", "inferwatch", "replay", "--topic", topic, "--from", "-1d"],
                             capture_output=True, env=bare, cwd=ROOT, timeout=300)
        assert res.returncode != 0 and b"KAFKA_SECURITY_PROTOCOL" in res.stderr, protocol


@pytest.mark.integration
def test_the_topic_guard_logs_in_too(kafka_sasl, tmp_path):
    """Faust's consumer (aiokafka) and the decisions' producer on the broker that asks for a login: one
    decision per valid event, as the in-process guard gives it."""
    import yaml
    from test_http_guard import ALL_RULES

    from inferwatch.detectors.config import MonitorConfig
    from inferwatch.streams.guard import Guard, Rejection
    from inferwatch.testing.services import listen_port

    lines = [x for x in DEMO.read_bytes().splitlines()[:500] if x.strip()]
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(lines) + b"\n")
    source = unique("guard-in")
    _produce(kafka_sasl, source, events, tmp_path)
    config = tmp_path / "rules.yaml"
    config.write_text(yaml.safe_dump(ALL_RULES))
    guard = Guard(MonitorConfig.model_validate(ALL_RULES))
    want = [d.to_dict() for d in guard.check_batch(lines) if not isinstance(d, Rejection)]
    target = f"{source}-out"
    proc = subprocess.Popen([sys.executable, "-m", "inferwatch", "guard", "--config", str(config),
                             "--from-topic", source, "--to-topic", target, "--dead-letter-topic", f"{source}-dead",
                             "--app-id", unique("guard"), "--web-port", str(listen_port())], cwd=ROOT,
                            env={**os.environ, **_client_env(kafka_sasl)},
                            stdout=open(tmp_path / "guard.log", "wb"), stderr=subprocess.STDOUT)
    try:
        def done() -> bool:
            assert proc.poll() is None, (tmp_path / "guard.log").read_text()
            return len(_consume(kafka_sasl, target, tmp_path)) >= len(want)

        wait_until(done, 180, "every decision")
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    assert _consume(kafka_sasl, target, tmp_path) == want
