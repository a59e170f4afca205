"""The package's front door: light imports, the public surface, the CLI's conventions and errors."""

import gzip
import subprocess
import sys

import orjson
import pytest

import inferwatch
from inferwatch.testing.services import ROOT

DEMO = ROOT / "examples" / "card_fraud_stream.jsonl"
HEAVY = ("confluent_kafka", "kafka", "aiokafka", "faust", "mode", "redis", "uvicorn", "plotly", "prometheus_client")


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys; print(' '.join(sys.modules))"],
                         capture_output=True, text=True, check=True, timeout=120)
    return {m.split(".")[0] for m in out.stdout.split()}


@pytest.mark.parametrize("code", [
    "from inferwatch import Guard",
    "import inferwatch; inferwatch.Monitor, inferwatch.replay_file, inferwatch.Pipeline, inferwatch.load_config",
])
def test_the_guard_and_the_core_load_no_kafka_redis_faust_http_or_plotting(code):
    loaded = _modules_after(code)
    assert "inferwatch" in loaded and "numpy" in loaded  # the probe saw the imports
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_the_public_surface_is_what_all_names():
    for name in inferwatch.__all__:
        assert getattr(inferwatch, name) is not None
    assert issubclass(inferwatch.ConfigError, inferwatch.InferwatchError)
    assert issubclass(inferwatch.StateUnavailable, ConnectionError)
    with pytest.raises(AttributeError):
        inferwatch.no_such_name  # noqa: B018


def _cli(*args, stdin: bytes | None = None):
    return subprocess.run([sys.executable, "-m", "inferwatch", *map(str, args)], input=stdin, capture_output=True,
                          cwd=ROOT, timeout=300)


def test_version_and_short_help():
    res = _cli("--version")
    assert res.returncode == 0 and res.stdout.decode().split() == ["inferwatch", inferwatch.__version__]
    res = _cli("replay", "-h")
    assert res.returncode == 0 and b"--dead-letters-out" in res.stdout and b"--log-level" in res.stdout


def test_events_from_standard_input_and_gzip_give_the_file_s_alerts(tmp_path):
    plain = _cli("replay", "--file", DEMO)
    packed = tmp_path / "demo.jsonl.gz"
    packed.write_bytes(gzip.compress(DEMO.read_bytes()))
    assert plain.returncode == 0 and plain.stdout.count(b"\n") >= 2
    assert _cli("replay", "--file", packed).stdout == plain.stdout
    assert _cli("replay", "--file", "-", stdin=DEMO.read_bytes()).stdout == plain.stdout
    assert _cli("replay", "--file", "-", stdin=packed.read_bytes()).stdout == plain.stdout


def test_the_closing_summary_is_one_line_when_stderr_is_not_a_terminal():
    res = _cli("replay", "--file", DEMO)
    summary, reasons = res.stderr.decode().splitlines()  # no progress bar: the counts, then the dead letters' reasons
    assert summary.startswith("inferwatch replay: 30,002 events")
    assert reasons.startswith("inferwatch replay: dead letters by reason: ")


def test_an_output_in_a_missing_folder_is_refused_before_any_work(tmp_path):
    res = _cli("replay", "--file", DEMO, "--dead-letters-out", tmp_path / "nope" / "d.jsonl")
    assert res.returncode == 2 and res.stdout == b""
    (line,) = res.stderr.decode().splitlines()
    assert "--dead-letters-out" in line and "does not exist" in line


def test_a_user_error_is_one_line_and_exit_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("default:\n  warmup_events: 3\n")
    res = _cli("replay", "--file", DEMO, "--config", bad)
    assert res.returncode == 2
    (line,) = res.stderr.decode().splitlines()
    assert "default.warmup_events" in line


def test_a_run_that_monitored_nothing_says_so_and_fails(tmp_path):
    empty = tmp_path / "garbage.jsonl"
    empty.write_bytes(b"not json\n{}\n")
    res = _cli("replay", "--file", empty, "--dead-letters-out", tmp_path / "d.jsonl")
    assert res.returncode == 1 and b"no valid event" in res.stderr
    assert [orjson.loads(x)["source"]["line"] for x in (tmp_path / "d.jsonl").read_bytes().splitlines()] == [0, 1]


def test_a_bug_keeps_its_traceback(tmp_path):
    """Only inferwatch's own errors are one line: anything else is a bug and shows where it happened."""
    code = ("import sys; import inferwatch.streams.cli as cli\n"
            "def boom(*a, **k): raise TypeError('a bug')\n"
            "cli._config = boom\n"
            "sys.argv = ['inferwatch', 'replay', '--file', sys.argv[1]]\n"
            "cli.main()\n")
    res = subprocess.run([sys.executable, "-c", code, str(DEMO)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 1 and "Traceback" in res.stderr and "TypeError: a bug" in res.stderr


def test_a_missing_extra_is_one_line_naming_it(tmp_path):
    """With the Kafka client hidden, the worker says which extra to install."""
    code = ("import sys; sys.modules['confluent_kafka'] = None\n"
            "import inferwatch.streams.cli as cli\n"
            "sys.argv = ['inferwatch', 'worker', '--bootstrap-servers', 'x:1', '--redis-url', 'redis://x']\n"
            "cli.main()\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2
    (line,) = res.stderr.splitlines()
    assert "inferwatch[kafka]" in line


def test_ci_runs_exactly_the_readme_test_command():
    readme = (ROOT / "README.md").read_text().split("```bash\n", 1)[1].split("```", 1)[0].splitlines()
    install_and_run, test_command = readme[0], readme[1]
    assert "inferwatch replay --file examples/" in install_and_run
    assert test_command in (ROOT / ".ci" / "run").read_text().splitlines()
    assert "-m pytest" in test_command and "venv" in test_command
