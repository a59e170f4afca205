"""Secrets stay secret: a password in a URL never shows in a repr, an error, or the worker's settings."""

import shutil
import subprocess
import sys

import pytest
import typer.main

from inferwatch.streams.cli import app
from inferwatch.streams.secret_url import SecretURL, reveal
from inferwatch.streams.worker import WorkerSettings
from inferwatch.testing.services import ROOT, listen_port, wait_until


def test_url_options_hold_no_password_once_parsed(monkeypatch):
    """The parsed options (what a stack dump with locals prints) and the worker's settings hide it."""
    monkeypatch.setenv("REDIS_URL", "redis://:s3cret@127.0.0.1:6379/0")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    monkeypatch.setenv("INFERWATCH_WEBHOOK_URL", "https://hook:pw2@hooks.example/x")
    command = typer.main.get_command(app).commands["worker"]
    ctx = command.make_context("worker", ["--events-topic", "t"])
    url, hook = ctx.params["redis_url"], ctx.params["webhook_url"]
    assert isinstance(url, SecretURL) and reveal(url) == "redis://:s3cret@127.0.0.1:6379/0"
    shown = repr(ctx.params) + repr(WorkerSettings(bootstrap_servers="b", redis_url=url, events_topic="t",
                                                   webhook_url=hook))
    assert "s3cret" not in shown and "pw2" not in shown and "redis://:***@127.0.0.1:6379/0" in shown


@pytest.fixture
def redis_with_password(tmp_path):
    port = listen_port()
    proc = subprocess.Popen([shutil.which("redis-server") or "redis-server", "--port", str(port), "--save", "",
                             "--requirepass", "right-one", "--dir", str(tmp_path)], stdout=subprocess.DEVNULL)
    wait_until(lambda: subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True).returncode == 0,
               30, "redis-server")
    yield port
    proc.kill()


def test_a_wrong_redis_password_is_one_line_without_the_password(redis_with_password):
    res = subprocess.run([sys.executable, "-m", "inferwatch", "status"], capture_output=True, text=True, cwd=ROOT,
                         timeout=60, env={"REDIS_URL": f"redis://:wrong-one@127.0.0.1:{redis_with_password}/0",
                                          "PATH": "/usr/bin:/bin"})
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert "wrong-one" not in res.stderr + res.stdout and "REDIS_URL" in res.stderr
