"""``inferwatch replay`` on the bundled demo, as a user runs it."""

import base64
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

ROOT = Path(__file__).resolve().parent.parent
STREAM = ROOT / "examples" / "card_fraud_stream.jsonl"
REFERENCE = ROOT / "examples" / "card_fraud_reference.jsonl"
UNIT_BUG_LINE = 12_006  # event 12,000 of the stream, after 6 broken lines
NEW_COUNTRY_LINE = 20_010


def replay(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "inferwatch", "replay", *map(str, args)],
                          capture_output=True, cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    res = replay("--file", STREAM, "--reference", REFERENCE, "--alerts-out", out / "a.jsonl",
                 "--dead-letters-out", out / "d.jsonl")
    assert res.returncode == 0, res.stderr.decode()
    return out, res


def alerts_of(path):
    return [orjson.loads(line) for line in Path(path).read_bytes().splitlines()]


def test_demo_catches_the_unit_bug_and_the_new_country(demo):
    out, _ = demo
    alerts = alerts_of(out / "a.jsonl")
    first = {(a["feature"], a["detector"]): a for a in reversed(alerts) if a["status"] == "firing"}
    unit = first[("amount", "shape")]  # (values past the reference's range: found after a few)
    assert 0 <= unit["position"] - UNIT_BUG_LINE < 50 and unit["severity"] == "critical"
    new = first[("country", "new_category")]
    assert 0 <= new["position"] - NEW_COUNTRY_LINE < 1000 and "'BR'" in new["message"]
    records = [a for a in alerts if a["kind"] == "incident"]
    alerts = [a for a in alerts if a["kind"] != "incident"]
    assert {a["feature"] for a in alerts} == {"amount", "country"}, "no alert on a column that did not change"
    # one incident: every alert and every record carries its id
    assert len({a["incident_id"] for a in alerts + records}) == 1
    said = [(r["status"], r["message"].split(" on ")[0], r["incident"]["cause"]) for r in records]
    assert said == [("firing", "incident opened", "a data-quality failure upstream: amount"),
                    ("resolved", "incident resolved", "a data-quality failure upstream: amount"),
                    ("firing", "incident reopened", "one upstream column changed units: amount (about x115)"),
                    ("firing", "incident updated", "one upstream column changed units: amount (about x115)")]
    last = records[-1]["incident"]
    assert last["columns"] == ["amount", "country"] and last["first"] == "amount" and not last["prediction_moved"]
    assert "x115" in last["changes"][0]["message"] and records[-1]["position"] == new["position"]
    for a in alerts:
        assert set(a) >= {"alert_id", "status", "model", "feature", "kind", "detector", "severity", "score",
                          "threshold", "event_time", "position", "message"}
        assert a["event_time"].endswith("Z") and a["score"] >= a["threshold"]


def test_dead_letters_keep_reason_line_and_bytes(demo):
    out, res = demo
    dead = alerts_of(out / "d.jsonl")
    assert len(dead) == 13
    lines = STREAM.read_bytes().split(b"\n")
    for d in dead:
        assert d["error"] and base64.b64decode(d["raw"]) == lines[d["source"]["line"]]
    assert b"30,002 events, 13 dead letters" in res.stderr


def test_same_input_twice_gives_byte_identical_alerts(demo, tmp_path):
    out, _ = demo
    res = replay("--file", STREAM, "--reference", REFERENCE)
    assert res.returncode == 0
    assert res.stdout == (out / "a.jsonl").read_bytes()


def test_alerts_do_not_depend_on_the_batch_size(demo, tmp_path):
    out, _ = demo
    cfg = tmp_path / "small.yaml"
    cfg.write_text("batch_size: 997\n")
    res = replay("--file", STREAM, "--reference", REFERENCE, "--config", cfg)
    assert res.stdout == (out / "a.jsonl").read_bytes()


def test_files_that_start_with_a_byte_order_mark_lose_no_line(demo, tmp_path):
    """A Windows export puts a byte order mark before its first line: the stream (plain or gzip) and the
    reference read as without it (the first line was a dead letter, the reference's silently dropped)."""
    import gzip

    out, _ = demo
    stream, reference = tmp_path / "stream.jsonl.gz", tmp_path / "reference.jsonl"
    stream.write_bytes(gzip.compress(b"\xef\xbb\xbf" + STREAM.read_bytes()))
    reference.write_bytes(b"\xef\xbb\xbf" + REFERENCE.read_bytes())
    res = replay("--file", stream, "--reference", reference)
    assert res.returncode == 0, res.stderr.decode()
    assert b"30,002 events, 13 dead letters" in res.stderr
    assert res.stdout == (out / "a.jsonl").read_bytes()


def test_without_reference_the_warmup_is_the_baseline():
    res = replay("--file", STREAM)
    assert res.returncode == 0, res.stderr.decode()
    alerts = [orjson.loads(x) for x in res.stdout.splitlines()]
    assert any(a["feature"] == "amount" and 0 <= a["position"] - UNIT_BUG_LINE < 50 for a in alerts)


def test_bad_config_fails_before_reading_events(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("default:\n  bins: 1\n")
    res = replay("--file", STREAM, "--config", cfg)
    assert res.returncode == 2
    assert b"default.bins" in res.stderr and res.stdout == b""


def test_a_replay_of_mostly_dead_letters_says_so_first_and_fails(tmp_path):
    events = tmp_path / "e.jsonl"
    events.write_bytes(STREAM.read_bytes().splitlines()[10] + b"\nnope\n{\"x\": 1}\nnope again\n")
    res = replay("--file", events)
    lines = res.stderr.decode().splitlines()
    assert res.returncode == 1
    assert "most messages were dead letters (3 of 4)" in lines[0] and "2 x invalid JSON" in lines[0]
    assert any("dead letters by reason" in line for line in lines)
    relaxed = replay("--file", events, "--allow-bad-input")
    assert relaxed.returncode == 0 and "warning: most messages" in relaxed.stderr.decode()


def test_a_reference_of_another_model_or_empty_fails_the_run(tmp_path):
    other = tmp_path / "other.jsonl"
    other.write_bytes(b"".join(line.replace(b'"card-fraud"', b'"other-model"') + b"\n"
                               for line in REFERENCE.read_bytes().splitlines()[:500]))
    res = replay("--file", STREAM, "--reference", other, "--alerts-out", tmp_path / "a.jsonl")
    assert res.returncode == 1 and "'other-model'" in res.stderr.decode().splitlines()[0]
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"nope\n")
    res = replay("--file", STREAM, "--reference", empty, "--alerts-out", tmp_path / "a.jsonl")
    assert res.returncode == 1 and "reference held no valid event" in res.stderr.decode().splitlines()[0]


def test_models_and_columns_named_in_the_config_but_never_seen_are_reported(tmp_path):
    cfg = tmp_path / "m.yaml"
    cfg.write_text("models:\n  card-fraud:\n    columns: {nothere: {type: numeric}}\n  ghost: {}\n")
    res = replay("--file", STREAM, "--reference", REFERENCE, "--config", cfg, "--alerts-out", tmp_path / "a.jsonl")
    said = [line for line in res.stderr.decode().splitlines() if "never seen" in line]
    assert res.returncode == 0 and said and "'nothere'" in said[0] and "'ghost'" in said[0]


def test_a_model_whose_baseline_never_completed_is_said_not_monitored(tmp_path):
    """A model with too few events for its warm-up (a low-traffic one beside a busy one) was never watched:
    the summary says so, with its count, instead of a quiet zero alerts."""
    lines = STREAM.read_bytes().splitlines()[:12_000]
    few = [line.replace(b'"model":"card-fraud"', b'"model":"rare"') for line in lines[:300]]
    events = tmp_path / "two.jsonl"
    events.write_bytes(b"\n".join(lines + few) + b"\n")
    res = replay("--file", events, "--alerts-out", tmp_path / "a.jsonl")
    said = [line for line in res.stderr.decode().splitlines() if "baseline not complete" in line]
    assert res.returncode == 0 and said and "'rare' (" in said[0] and "'card-fraud'" not in said[0], said
    # when no model was watched at all, the run failed: said first, exit 1 (relaxed by --allow-bad-input)
    alone = tmp_path / "rare.jsonl"
    alone.write_bytes(b"\n".join(few) + b"\n")
    res = replay("--file", alone, "--alerts-out", tmp_path / "b.jsonl")
    first = res.stderr.decode().splitlines()[0]
    assert res.returncode == 1 and "error" in first and "baseline completed" in first, first
    assert replay("--file", alone, "--allow-bad-input", "--alerts-out", tmp_path / "b.jsonl").returncode == 0


def _rich_log(path, n=12_000):
    """A model's log with an id, a free-text note and named outputs (the columns real logs carry)."""
    from inferwatch.testing.synthetic import generate, log_columns

    cols, log = generate(n, seed=5), log_columns(n, seed=6)
    lines = []
    for i in range(n):
        note = log["note"][i]
        lines.append(orjson.dumps({
            "event_id": f"e{i}", "model": "churn", "timestamp": 1_793_491_200 + i,
            "features": {"request_id": log["request_id"][i], "note": note, "merchant": log["merchant"][i],
                         "amount": float(cols.amount[i]), "has_3ds": bool(log["has_3ds"][i]),
                         "signed_up_at": (1_793_491_200 + i - 86_400 * (i % 50)) * 1000, "seq": 90_000 + i,
                         "embedding": [0.5, -0.25]},
            "prediction": {"score": float(cols.prediction[i]), "label": "stay" if cols.prediction[i] < 0.5 else "go"},
            "tags": {"region": log["region"][i]}}))
    path.write_bytes(b"\n".join(lines) + b"\n")


def test_profile_names_roles_and_writes_a_config_replay_takes_unchanged(tmp_path):
    events, written = tmp_path / "log.jsonl", tmp_path / "monitor.yaml"
    _rich_log(events)
    res = subprocess.run([sys.executable, "-m", "inferwatch", "profile", "--file", events, "--write", written],
                         capture_output=True, cwd=ROOT, timeout=300)
    assert res.returncode == 0, res.stderr.decode()
    lines = res.stdout.decode().splitlines()
    assert lines[1] == "  not watched (objects and arrays): embedding (array)"
    rows = {line.split()[0]: line.split()[1:3] for line in lines[2:]}
    assert rows["request_id"] == ["categorical", "identifier"] and rows["note"] == ["categorical", "text"]
    assert rows["has_3ds"] == ["boolean", "boolean"] and rows["prediction.score"][0] == "numeric"
    assert rows["signed_up_at"] == ["numeric", "timestamp"] and rows["seq"] == ["numeric", "identifier"]
    assert "note.length" in rows and "signed_up_at.age" in rows
    plain = replay("--file", events)
    assert "not watched in churn (objects and arrays): embedding (array)" in plain.stderr.decode()
    pinned = replay("--file", events, "--config", written)
    assert pinned.returncode == 0 and pinned.stdout == plain.stdout, pinned.stderr.decode()


def test_the_command_line_keeps_freed_memory_before_polars_loads():
    """The allocator options are set by ``main`` before any subcommand imports polars (jemalloc reads them
    once); glibc takes the mallopt calls; a user's own setting is left alone."""
    probe = ("import os, sys; from inferwatch.streams import cli; "
             "print('polars' in sys.modules, cli.keep_freed_memory(), os.environ['_RJEM_MALLOC_CONF'])")
    clean = {k: v for k, v in os.environ.items() if k != "_RJEM_MALLOC_CONF" and not k.startswith("MALLOC_")}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                         env=clean).stdout.split()
    assert out == ["False", "True", "dirty_decay_ms:-1,muzzy_decay_ms:-1"]
    mine = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                          env={**clean, "_RJEM_MALLOC_CONF": "narenas:2", "MALLOC_TRIM_THRESHOLD_": "0"}).stdout.split()
    assert mine == ["False", "False", "narenas:2"]


def test_a_reference_longer_than_the_baseline_takes_says_so(tmp_path):
    """A reference of 3,000 events with ``max_reference_events: 2000``: the summary says the baseline took
    the first 2,000 of them (it said nothing; the rest were silently unused). The demo's own reference fits."""
    cfg = tmp_path / "m.yaml"
    cfg.write_text("default: {max_reference_events: 2000}\n")
    reference = tmp_path / "ref.jsonl"
    reference.write_bytes(b"\n".join(REFERENCE.read_bytes().splitlines()[:3_000]) + b"\n")
    res = replay("--file", STREAM, "--reference", reference, "--config", cfg, "--alerts-out", tmp_path / "a.jsonl")
    said = [line for line in res.stderr.decode().splitlines() if "reference events as its baseline" in line]
    assert res.returncode == 0 and said == ["inferwatch replay: 'card-fraud' took the first 2,000 of its 3,000 "
                                            "reference events as its baseline (max_reference_events)"], said
    res = replay("--file", STREAM, "--reference", REFERENCE, "--alerts-out", tmp_path / "b.jsonl")
    assert "as its baseline" not in res.stderr.decode()
