"""The pipeline step, and the worker's partition step over it: no Kafka, no Redis."""

import io
import re

import numpy as np
import orjson
import pytest

from inferwatch.detectors.config import MonitorConfig
from inferwatch.errors import StateError
from inferwatch.streams.pipeline import Pipeline
from inferwatch.streams.replay import replay_file
from inferwatch.streams.state_store import PartitionState
from inferwatch.streams.worker import Partition, process_partition_batch
from inferwatch.testing.services import ROOT

DEMO = ROOT / "examples" / "card_fraud_stream.jsonl"
RULES = MonitorConfig.model_validate({"default": {
    "segments": ["region"],
    "rules": [{"kind": "range", "field": "prediction", "min": 0, "max": 0.5, "action": "fix"}]}})


def _file_replay(config: MonitorConfig) -> tuple[list[dict], list[bytes], list[dict]]:
    alerts, outputs, dead = io.BytesIO(), io.BytesIO(), io.BytesIO()
    replay_file(DEMO, config, alerts, dead_letters_out=dead, outputs_out=outputs)
    return ([orjson.loads(x) for x in alerts.getvalue().splitlines()], outputs.getvalue().splitlines(),
            [orjson.loads(x) for x in dead.getvalue().splitlines()])


@pytest.mark.parametrize("config", [MonitorConfig(), RULES], ids=["defaults", "rules and segments"])
def test_the_partition_step_gives_the_file_replay_s_alerts_decisions_and_dead_letters(config):
    """Batches of a partition, with the state saved to bytes and loaded again between them (as Redis would),
    and every batch delivered twice (as after a crash): the file replay's output, each event counted once."""
    lines = DEMO.read_bytes().splitlines()
    offsets = list(range(1000, 1000 + len(lines)))  # offset = line + 1000
    stored, fields = PartitionState(), {}
    alerts, decisions, dead = [], [], []
    for lo in range(0, len(lines), 7_000):
        for _ in range(2):  # a re-delivery of the same batch changes nothing
            part = Partition("events", 3, PartitionState.from_bytes(stored.to_bytes()), stored.next_offset or -1,
                             fields=dict(fields))
            out = process_partition_batch(config, part, offsets[lo:lo + 7_000], lines[lo:lo + 7_000])
            if part.state.next_offset != stored.next_offset:
                alerts += [orjson.loads(v) for _, v in out.alerts]
                decisions += [v for _, v in out.decisions]
                dead += [orjson.loads(v) for v in out.dead]
            assert out.state == part.state and out.state is not part.state  # a copy: the next batch may run on
            stored = out.state
            fields.update(out.fields)  # the store keeps earlier fields and overwrites the changed ones
    want_alerts, want_outputs, want_dead = _file_replay(config)
    # a guard with rules refuses the 2 events with a field of the wrong type; the monitor counts them all
    assert stored.events == 30_002 and stored.dead_letters == (15 if config.has_rules() else 13) == len(want_dead)
    assert [a["position"]["offset"] - 1000 for a in alerts] == [a["position"] for a in want_alerts]
    assert [{**a, "position": None} for a in alerts] == [{**a, "position": None} for a in want_alerts]
    assert decisions == (want_outputs if config.has_rules() else [])
    assert [(d["source"]["offset"] - 1000, d["error"], d["raw"]) for d in dead] == \
        [(d["source"]["line"], d["error"], d["raw"]) for d in want_dead]


def test_the_worker_keeps_segment_statistics_like_replay():
    lines = [orjson.dumps({"event_id": f"e{i}", "model": "m", "timestamp": 1_793_491_200 + i,
                           "features": {"x": i % 5}, "tags": {"region": "eu" if i % 2 else "us"}})
             for i in range(600)]
    config = MonitorConfig.model_validate({"default": {"segments": ["region"], "warmup_events": 200}})
    part = Partition("events", 0, PartitionState(), -1)
    process_partition_batch(config, part, list(range(600)), lines)
    assert part.pipeline.schema.tags == ("region",)
    assert sorted(part.pipeline.monitor.models["m"].segments["region"]) == ["eu", "us"]


def test_a_state_is_never_read_with_another_config():
    lines = DEMO.read_bytes().splitlines()[:2000]
    pipe = Pipeline.build(MonitorConfig(), lines)
    pipe.step(lines)
    saved = pipe.to_bytes()
    assert Pipeline.from_bytes(saved, MonitorConfig()).monitor.models["card-fraud"].events == 2000 - 1
    closing = MonitorConfig.model_validate({"default": {"alert_policy": {"resolve_fraction": 0.5}}})
    assert Pipeline.from_bytes(saved, closing).monitor.models["card-fraud"].events == 2000 - 1  # when episodes close
    other = MonitorConfig.model_validate({"default": {"warmup_events": 5000}})
    with pytest.raises(StateError, match="another config"):
        Pipeline.from_bytes(saved, other)
    for broken in (b"", b"\xc1", saved[: len(saved) // 2], orjson.dumps({"version": 1})):
        with pytest.raises(StateError):
            Pipeline.from_bytes(broken, MonitorConfig())


def test_an_unreadable_partition_document_is_a_state_error_naming_it():
    with pytest.raises(StateError, match="inferwatch:app:partition:t:0"):
        PartitionState.from_bytes(b"\x93\x01\x02", "inferwatch:app:partition:t:0")


def _events(models: list[str], n: int) -> list[bytes]:
    return [orjson.dumps({"event_id": f"e{i}", "model": models[i % len(models)], "timestamp": 1_793_491_200 + i,
                          "features": {"x": i % 7}}) for i in range(n)]


def test_models_are_bounded_by_name_length_count_and_allow_list():
    """The model name comes from the event: an over-long name, a model past the cap or not listed is a dead
    letter naming ``model`` (the event is kept, as bytes), and the other models are monitored as before."""
    config = MonitorConfig.model_validate({"limits": {"max_models": 3, "max_model_name_bytes": 50}})
    names = ["a", "b", "c", "d", "x" * 51]
    pipe = Pipeline.build(config, [])
    result = pipe.step(_events(names, 500))
    assert sorted(pipe.monitor.models) == ["a", "b", "c"]
    assert result.events == 300 and len(result.dead) == 200 and {d.field for d in result.dead} == {"model"}
    assert [d.index for d in result.dead] == sorted(i for i in range(500) if i % 5 >= 3)
    listed = MonitorConfig.model_validate({"limits": {"only_listed_models": True}, "models": {"b": {}}})
    pipe = Pipeline.build(listed, [])
    assert pipe.step(_events(names, 50)).events == 10 and list(pipe.monitor.models) == ["b"]
    assert len(pipe.decide(_events(names, 50)).decisions) == 10  # the guard too


def test_an_empty_kafka_message_is_a_dead_letter_while_a_blank_file_line_is_skipped():
    lines = _events(["m"], 300)
    part = Partition("events", 0, PartitionState(), -1)
    out = process_partition_batch(MonitorConfig(), part, list(range(302)), lines[:100] + [b"", b"  "] + lines[100:])
    assert [orjson.loads(d)["source"]["offset"] for d in out.dead] == [100, 101]
    assert part.state.events == 300 and part.state.dead_letters == 2
    in_file = Pipeline.build(MonitorConfig(), lines).step(lines[:100] + [b"", b"  "] + lines[100:])
    assert in_file.dead == [] and in_file.blank == 2 and in_file.events == 300


def test_many_models_grow_the_step_and_detection_does_not_depend_on_it():
    """40 interleaved models (one with a unit bug): each step size gives the same alerts, and the step the
    drivers take grows to about 512 events per model."""
    lines = []
    for i, line in enumerate(DEMO.read_bytes().splitlines()[:24_000]):
        event = orjson.loads(line) if b'"event_id":"e-' in line else None
        if event is None:
            continue
        event["model"] = f"m{i % 40:02d}"
        lines.append(orjson.dumps(event))
    config = MonitorConfig.model_validate({"default": {"warmup_events": 200}})

    def alerts(step: int) -> list[dict]:
        pipe = Pipeline.build(config, lines[:1000])
        out = []
        for first in range(0, len(lines), step):
            out += [a.to_record(i) for i, a in pipe.step(lines[first:first + step], first).alerts]
        assert pipe.step_lines(1000) == 512 * 40
        for a in out:  # the evidence is summed in another order: equal to float rounding, not to the bit
            a["score"] = round(a["score"], 3)
        return out

    whole = alerts(len(lines))
    assert whole and {a["model"] for a in whole} >= {"m00"}
    assert alerts(333) == whole == alerts(5_000)


def test_a_feature_that_changes_type_is_one_finding_not_a_blackout():
    """From event 12,000 on, ``age`` arrives as a string and ``amount`` jumps x100: every event still counts,
    the unit bug on the other column is still caught, and the type change is one data_quality alert."""
    lines = [line for line in DEMO.read_bytes().splitlines() if b'"event_id":"e-' in line]
    changed = []
    for i, line in enumerate(lines):
        event = orjson.loads(line)
        if i >= 12_000 and event["features"].get("age") is not None:
            event["features"]["age"] = str(event["features"]["age"])
        changed.append(orjson.dumps(event))
    pipe = Pipeline.build(MonitorConfig(), changed[:1000])
    result = pipe.step(changed)
    assert result.events == len(changed) and not result.dead
    firing = [a for _, a in result.alerts if a.status == "firing"]
    typed = [a for a in firing if a.detector == "type_changed"]
    assert [(a.feature, a.kind) for a in typed] == [("age", "data_quality")]
    assert "got a string" in typed[0].message
    assert any(a.feature == "amount" and a.row >= 12_000 for a in firing if a.detector != "type_changed")


NAMES = ["event_id", "model", "prediction", "features.prediction", "prediction.score.value", "prediction.",
         'avg("7d")', "a\nb", "back\\slash", "tags.region", "\x1f0"]


@pytest.mark.parametrize("outputs", [False, True], ids=["a scalar prediction", "named outputs"])
def test_a_feature_may_have_any_name_even_the_prediction_s(outputs):
    """Features named as the event's own fields, as the prediction's columns, or with quotes, backslashes and
    control characters: every event counts, each such feature is a column (one named as a column of the
    prediction is watched as ``features.<name>``), and a value of the wrong type is a finding about it."""
    rng = np.random.default_rng(7)
    lines = []
    for i in range(3_000):
        features = {name: round(float(rng.normal(k, 1)), 3) for k, name in enumerate(NAMES)}
        features["big"] = 12345 + i % 7
        if i % 100 == 99:
            features['avg("7d")'] = "n/a"  # the wrong type, in a field the typed screen cannot name
        prediction = {"score": round(float(rng.random()), 3)} if outputs else round(float(rng.random()), 3)
        line = orjson.dumps({"event_id": f"e{i}", "model": "m", "timestamp": 1793491200 + i,
                             "features": features, "prediction": prediction, "tags": {"region": "eu"}})
        if i % 100 == 98:  # a bare NaN in the feature named prediction; a number past a double in another
            line = line.replace(b'"prediction":', b'"prediction":NaN,"was":', 1)
            line = line.replace(b'"big":', b'"big":1' + b"0" * 400 + b',"was":', 1)
        lines.append(line)
    config = MonitorConfig.model_validate({"default": {"segments": ["region"], "warmup_events": 1000}})
    pipe = Pipeline.build(config, lines[:1000])
    result = pipe.step(lines)
    assert result.events == len(lines) and not result.dead
    prediction = "prediction.score" if outputs else "prediction"
    columns = set(pipe.monitor.models["m"].columns)
    assert {"event_id", "model", "features.prediction", "features.features.prediction",
            "features.prediction.score.value", "features.prediction.", 'avg("7d")', "a\nb", "back\\slash",
            "tags.region", "\x1f0", prediction} <= columns
    assert pipe.monitor.models["m"].columns[prediction].kind == "numeric"
    typed = [a for _, a in result.alerts if a.detector == "type_changed"]
    assert sorted(a.feature for a in typed if a.status == "firing") == ['avg("7d")', "features.prediction"]


@pytest.mark.parametrize("where", ["top", "features", "tags"])
def test_integers_past_64_bits_lose_no_event(where):
    """An integer past 64 bits (a 128-bit hash) at the top of the event, among its features or in its tags:
    every event counts (the reader refused each, a dead letter), a feature that holds one is a number, and a
    field of the wrong type beside it is still a finding about that field."""
    def event(i: int) -> bytes:
        line = orjson.dumps({"event_id": f"e{i}", "model": "m", "timestamp": 1793491200 + i,
                             "features": {"ratio": 0.5 + (i % 7) / 10, "n": i % 5}, "prediction": 0.1})
        big = str(2**130 + i).encode()
        if where == "features":
            return line.replace(b'"features":{', b'"features":{"hash":' + big + b",")
        return line[:-1] + (b',"hash":' + big if where == "top" else b',"tags":{"h":' + big + b"}") + b"}"

    lines = [event(i) for i in range(2_000)]
    bad = lines[1500].replace(b'"ratio":', b'"ratio":"NaN","was":')
    config = MonitorConfig.model_validate({"default": {"warmup_events": 1000, "segments": ["h"]}})
    pipe = Pipeline.build(config, lines[:1000])
    result = pipe.step(lines[:1500] + [bad] + lines[1501:])
    assert result.events == 2_000 and not result.dead
    assert [a.feature for _, a in result.alerts if a.detector == "type_changed"] == ["ratio"]
    assert ("hash" in pipe.monitor.models["m"].columns) == (where == "features")


def test_a_kind_of_wrong_value_the_reference_holds_is_how_the_column_is():
    """A bare ``NaN`` now and then (a zero denominator), in the reference as in the stream: it opened a
    ``type_changed`` episode each time it came back after a quiet spell (a few pages a day). The reference
    holds it, so it is how the column is (its rate is the missing-value detector's); a string there is news."""
    def event(i: int, ratio: str) -> bytes:
        return (f'{{"event_id":"e{i}","model":"m","timestamp":{1793491200 + i / 10},'
                f'"features":{{"ratio":{ratio},"n":{i % 5}}},"prediction":0.1}}').encode()

    def lines(start: int, n: int) -> list[bytes]:
        return [event(i, "NaN" if i % 15_000 == 7_000 else f"{1 + (i * 7919 % 1000) / 1000:.3f}")
                for i in range(start, start + n)]

    reference = lines(0, 40_000)
    pipe = Pipeline.build(MonitorConfig(), reference[:1000], [reference])
    stream = lines(40_000, 100_000)
    stream[-500] = event(139_500, '"unknown"')
    result = pipe.step(stream)
    typed = [(a.feature, a.row) for _, a in result.alerts if a.detector == "type_changed" and a.status == "firing"]
    assert typed == [("ratio", 99_500)], typed


def test_a_trickle_of_wrong_types_is_one_episode():
    """``"unknown"`` in 1 of 2,000 ``n_devices`` and a text "true" in 1 of 1,000 booleans, from the first event
    on: one episode each, not one each time a value comes after a short quiet spell (the missing-value
    detector watches their rate). A string that starts after the baseline is news too, once."""
    import numpy as np

    rng = np.random.default_rng(5)
    lines = []
    for i in range(60_000):
        devices = "unknown" if rng.random() < 0.0005 else int(rng.integers(1, 4))
        member = "true" if rng.random() < 0.001 else bool(rng.random() < 0.3)
        tenure = str(i % 50) if i >= 40_000 and i % 3 == 0 else i % 50
        lines.append(orjson.dumps({"event_id": f"e{i}", "model": "m", "timestamp": 1_793_491_200 + i / 100,
                                   "features": {"n_devices": devices, "is_member": member, "tenure": tenure,
                                                "x": float(rng.normal())}, "prediction": 0.5}))
    pipe = Pipeline.build(MonitorConfig(), lines[:1000])
    fired = [a for first in range(0, len(lines), 7_000) for _, a in pipe.step(lines[first:first + 7_000], first).alerts
             if a.status == "firing" and a.kind != "incident"]
    typed = sorted(a.feature for a in fired if a.detector == "type_changed")
    assert typed == ["n_devices", "tenure"], [a.message for a in fired]  # (is_member's sample made it text)
    assert {a.feature for a in fired if a.detector != "type_changed"} <= {"tenure"}  # its strings count as missing


def test_type_findings_and_share_words_do_not_depend_on_where_batches_are_cut():
    """A country that vanishes is said to reach 0 % over the same events, and wrong values of two kinds in one
    column (a string, then a bare NaN) give the same findings, in one batch or in batches of 100."""
    import numpy as np

    rng = np.random.default_rng(1)
    lines = []
    for i in range(12_000):
        country = str(rng.choice(["FR", "US", "DE"], p=[0.15, 0.45, 0.40] if i < 6_000 else [0.0, 0.53, 0.47]))
        amount = "x" if i in (100, 8_000) else float(i % 7)
        line = orjson.dumps({"event_id": f"e{i}", "model": "m", "timestamp": 1_793_491_200 + i,
                             "features": {"country": country, "amount": amount}})
        lines.append(line.replace(b'"amount":1.0', b'"amount":NaN') if i == 8_001 else line)
    config = MonitorConfig.model_validate({"default": {"warmup_events": 2_000, "columns": {
        "country": {"type": "categorical"}, "amount": {"type": "numeric"}}}})

    def alerts(step: int) -> list[tuple]:
        pipe = Pipeline.build(config, lines[:500])
        return [(i, a.feature, a.detector, a.status, a.message) for lo in range(0, len(lines), step)
                for i, a in pipe.step(lines[lo:lo + step], lo).alerts if a.kind != "incident"]

    whole = alerts(len(lines))
    assert whole == alerts(100)
    assert any("'FR' fell" in m and "to about 0.00%" in m for *_, m in whole), whole
    assert [(i, d) for i, _, d, s, _ in whole if d == "type_changed" and s == "firing"] == \
        [(100, "type_changed")], whole  # the string again and the NaN came within 10,000 events: no news


def _two_models(n: int, drift_at: int) -> list[bytes]:
    """Model "fraud": numeric prediction and card features; model "churn": named outputs and other features,
    its ``prediction.score`` shifting at ``drift_at``. Interleaved on one stream."""
    import numpy as np

    rng = np.random.default_rng(3)
    out = []
    for i in range(n):
        if i % 2 == 0:
            event = {"event_id": f"f{i}", "model": "fraud", "timestamp": 1_793_491_200 + i,
                     "features": {"amount": float(rng.lognormal(3, 1)), "country": str(rng.choice(["US", "DE"]))},
                     "prediction": float(rng.random())}
        else:
            shift = 0.3 if i >= drift_at else 0.0
            event = {"event_id": f"c{i}", "model": "churn", "timestamp": 1_793_491_200 + i,
                     "features": {"tenure": int(rng.integers(1, 60)), "amount": str(rng.choice(["low", "high"]))},
                     "prediction": {"score": float(min(rng.beta(2, 5) + shift, 1.0)), "label": "stay"}}
        out.append(orjson.dumps(event))
    return out


def test_two_models_of_different_shapes_on_one_stream_each_get_their_schema():
    """No dead letter: each model is decoded by its own schema (``amount`` is a number for one and a label
    for the other), the second model's output drift is caught, and the schemas survive a state round trip."""
    lines = _two_models(60_000, drift_at=40_000)
    config = MonitorConfig.model_validate({"default": {"warmup_events": 5000}})
    pipe = Pipeline.build(config, lines[:1000])
    first = pipe.step(lines[:20_000])
    again = Pipeline.from_bytes(pipe.to_bytes(), config)
    rest = again.step(lines[20_000:], 20_000)
    assert not first.dead and not rest.dead and first.events + rest.events == len(lines)
    assert not [a for _, a in first.alerts + rest.alerts if a.status == "firing" and a.model == "fraud"]
    churn = [(i, a) for i, a in rest.alerts if a.model == "churn" and a.status == "firing" and a.kind != "incident"]
    assert churn and all(a.feature == "prediction.score" and i >= 40_000 for i, a in churn)
    columns = set(again.monitor.models["churn"].columns)
    assert {"tenure", "amount", "prediction.score", "prediction.label"} <= columns
    assert again.monitor.models["fraud"].columns["amount"].kind == "numeric"
    assert again.monitor.models["churn"].columns["amount"].kind == "categorical"


def test_a_column_first_seen_after_the_baseline_gets_a_baseline_of_its_own():
    """``discount`` and ``updated_at`` (epoch ms, a minute or so before the event) are absent for the first
    12,000 events (the schema sample and the warm-up never see them), then present; from event 30,000
    ``discount`` jumps x10. Each is said once and baselined on its own first 10,000 events; the jump is
    caught, ``updated_at`` (a time: watched by its age) stays quiet, whatever the step size and with the
    pipeline saved and read back between steps."""
    import numpy as np

    rng = np.random.default_rng(9)
    lines = []
    for i in range(40_000):
        features = {"x": float(rng.normal())}
        if i >= 12_000:
            features["discount"] = float(rng.gamma(2.0, 5.0) * (10 if i >= 30_000 else 1))
            features["updated_at"] = int(1_793_491_200 + i - rng.exponential(60.0)) * 1000  # whole seconds
        lines.append(orjson.dumps({"event_id": f"e{i}", "model": "m", "timestamp": 1_793_491_200 + i,
                                   "features": features}))

    def alerts(step: int, saved: bool = False) -> list[tuple]:
        config = MonitorConfig()
        pipe, fields = Pipeline.build(config, lines[:1000]), {}
        out = []
        for first in range(0, len(lines), step):
            out += [(i, a.feature, a.detector, a.status) for i, a in pipe.step(lines[first:first + step], first).alerts
                    if a.kind != "incident"]
            if saved:
                head, changed = pipe.to_parts()
                fields.update(changed)
                pipe = Pipeline.from_parts(head, dict(fields), config)
        return out

    got = alerts(5_000)
    assert got[:4] == [(12_000, "discount", "new_column", "firing"), (12_000, "updated_at", "new_column", "firing"),
                       (21_999, "discount", "new_column", "resolved"), (21_999, "updated_at", "new_column", "resolved")]
    drift = [i for i, feature, detector, status in got[4:] if feature == "discount" and status == "firing"]
    assert drift and 30_000 <= drift[0] < 30_200
    assert [a for a in got[4:] if a[1] != "discount"] == []
    assert alerts(3_333) == got and alerts(3_333, saved=True) == got


def test_the_dead_letter_rate_is_watched_like_a_column():
    """1 % of the messages are unreadable, then 10 % from message 20,000: the stream's own ``dead_letters``
    column fires soon after; a steady 30 % stays quiet."""
    import numpy as np

    def stream(share_before: float, share_after: float) -> list[bytes]:
        rng = np.random.default_rng(4)
        out = []
        for i in range(30_000):
            if rng.random() < (share_before if i < 20_000 else share_after):
                out.append(b'{"event_id": "broken",')
            else:
                out.append(orjson.dumps({"event_id": f"e{i}", "model": "m", "timestamp": 1_793_491_200 + i,
                                         "features": {"x": float(rng.normal())}}))
        return out

    def dead_letter_alerts(lines: list[bytes]) -> list[int]:
        pipe = Pipeline.build(MonitorConfig(), lines[:1000])
        found = []
        for first in range(0, len(lines), 4_000):
            found += [i for i, a in pipe.step(lines[first:first + 4_000], first).alerts
                      if a.model == "(stream)" and a.feature == "dead_letters" and a.status == "firing"]
        return found

    rising = dead_letter_alerts(stream(0.01, 0.10))
    assert rising and 20_000 <= rising[0] < 20_300
    assert dead_letter_alerts(stream(0.30, 0.30)) == []


def test_a_batch_rewrites_only_the_models_it_touched_and_a_missing_part_is_named():
    config = MonitorConfig.model_validate({"default": {"warmup_events": 200}})
    lines = _events(["a", "b", "c"], 900)
    pipe = Pipeline.build(config, lines)
    pipe.step(lines)
    head, fields = pipe.to_parts()
    assert sorted(k for k in fields if k.startswith("model:")) == ["model:a", "model:b", "model:c"]
    assert any(k.startswith("fixed:") for k in fields)
    only_a = [line for line in _events(["a", "b", "c"], 1800)[900:] if orjson.loads(line)["model"] == "a"]
    pipe.step(only_a)
    head, changed = pipe.to_parts()
    assert list(changed) == ["model:a"]  # calibrated before: its codebook and lanes are not written again
    stored = {**fields, **changed}
    again = Pipeline.from_parts(head, stored, config)
    assert {m: mon.events for m, mon in again.monitor.models.items()} == {"a": 600, "b": 300, "c": 300}
    with pytest.raises(StateError, match="'b'"):
        Pipeline.from_parts(head, {k: v for k, v in stored.items() if k != "model:b"}, config)
    blob = next(k for k in stored if k.startswith("fixed:"))
    with pytest.raises(StateError, match=blob[len("fixed:"):]):
        Pipeline.from_parts(head, {k: v for k, v in stored.items() if k != blob}, config)


def test_a_column_still_taking_its_baseline_is_not_said_never_seen():
    """The summary's "never seen" lists what the config names and the stream never carried: not a column that
    came after the baseline and is still taking its own, nor the events' ids after a reference file."""
    from inferwatch.detectors.monitor import Monitor
    from inferwatch.detectors.types import Batch, NumericArray
    from inferwatch.streams.pipeline import never_seen

    config = MonitorConfig.model_validate({"models": {"m": {"monitor_unlisted": False, "columns": {
        "x": {}, "y": {}, "event_id.repeat": {}, "nothere": {}}}}})
    rng = np.random.default_rng(3)

    def events(start, n, y=False):
        columns = {"x": NumericArray(rng.normal(0, 1, n))}
        if y:
            columns["y"] = NumericArray(rng.normal(0, 1, n))
        return Batch("m", [f"e{i}" for i in range(start, start + n)], 1.7e9 + np.arange(start, start + n), columns)

    mon = Monitor(config)
    mon.fit_reference(events(0, 20_000))
    mon.process(events(20_000, 3_000, y=True))
    assert never_seen(config, mon.models) == ["column 'nothere' of model 'm'"]


def _versioned_events(n: int, canary_share: float, start: int = 0, shift_from: int | None = None,
                      version_of=None) -> list[bytes]:
    """A model's events, a share of them from a canary version; from ``shift_from`` on the canary's score
    is 0.3 higher (its inputs stay as they were)."""
    import numpy as np

    rng = np.random.default_rng(start)
    out = []
    for i in range(start, start + n):
        canary = rng.random() < canary_share
        score = float(rng.beta(2, 8)) + (0.3 if canary and shift_from is not None and i >= shift_from else 0.0)
        version = (version_of or (lambda c: "2.0-canary" if c else "1.9"))(canary)
        out.append(orjson.dumps({"event_id": f"e{i}", "model": "m", "model_version": version,
                                 "timestamp": 1793491200 + i / 10, "features": {"x": float(rng.normal())},
                                 "prediction": round(score, 4)}))
    return out


def test_a_canary_version_that_goes_wrong_is_found_on_its_own_traffic():
    """A canary version on 8 % of the traffic whose score moves: the model as a whole barely moves, the
    canary's own detectors (``model_version`` is a segment when the reference holds two versions) find it
    and the alert names the version."""
    reference = _versioned_events(20_000, 0.08)
    stream = _versioned_events(12_000, 0.08, start=20_000, shift_from=22_000)
    pipe = Pipeline.build(MonitorConfig(), reference[:1000], [reference])
    firing = [a for _, a in pipe.step(stream).alerts if a.status == "firing" and a.kind == "drift"]
    assert firing, "the canary's drift was missed"
    first = min(firing, key=lambda a: a.row)
    assert first.feature == "prediction" and first.segment == {"model_version": "2.0-canary"}
    assert first.row < 2_000 + 1_500  # its own bound is about 20.7 / KL(0.3 shift) canary events, ~100 of them


def test_one_version_is_the_model_itself_and_odd_versions_lose_no_event():
    """A reference of one version gives no version segment (it would be the model twice over); a version
    that is a number, an object or missing is read as its text (or as missing), never a dead letter; and
    ``version_segments: false`` turns the segments off."""
    reference = _versioned_events(4_000, 0.5, version_of=lambda c: "1.9" if c else 7)  # a number: its text
    reference[3] = reference[3].replace(b'"model_version":"1.9"', b'"model_version":{"a":1}')
    reference[4] = reference[4].replace(b'"model_version":"1.9",', b"").replace(b'"model_version":7,', b"")
    single = Pipeline.build(MonitorConfig(), reference[:1000], [_versioned_events(4_000, 0.0)])
    assert single.monitor.models["m"].segment_monitors == {}
    pipe = Pipeline.build(MonitorConfig(), reference[:1000], [reference])
    result = pipe.step(reference)
    assert result.events == len(reference) and not result.dead
    assert sorted(v for _, v in pipe.monitor.models["m"].segment_monitors) == ["1.9", "7"]
    off = MonitorConfig.model_validate({"default": {"version_segments": False}})
    two = _versioned_events(4_000, 0.5)
    assert Pipeline.build(off, two[:1000], [two]).monitor.models["m"].segment_monitors == {}
    assert sorted(v for _, v in Pipeline.build(MonitorConfig(), two[:1000], [two]).monitor.models["m"]
                  .segment_monitors) == ["1.9", "2.0-canary"]


def test_a_version_first_seen_live_takes_a_baseline_of_its_own_whatever_the_cuts():
    """A reference of one version, then a new one on 10 % of the traffic: its first 2,000 events are its
    baseline (quietly), then it has detectors of its own, and its score moving is named by it; the same alerts
    whatever the batch cuts, with the state saved and read back between batches."""
    reference = _versioned_events(20_000, 0.0)
    stream = _versioned_events(40_000, 0.1, start=20_000, shift_from=45_000,
                               version_of=lambda c: "2.0" if c else "1.9")
    runs = []
    for cut in (40_000, 3_333):
        pipe = Pipeline.build(MonitorConfig(), reference[:1000], [reference])
        alerts = []
        for lo in range(0, len(stream), cut):
            alerts += [(i, a.alert_id, a.status, a.segment) for i, a in pipe.step(stream[lo:lo + cut], lo).alerts]
            pipe = Pipeline.from_bytes(pipe.to_bytes(), MonitorConfig())
        runs.append(alerts)
        mon = pipe.monitor.models["m"]
        assert set(mon.segment_monitors) == {("model_version", "2.0")} and not mon.late_versions
    assert runs[0] == runs[1] and runs[0]
    first = min(runs[0])[0]
    assert 25_000 <= first < 25_000 + 2_000  # its shift starts at 25,000
    assert (first, "firing", {"model_version": "2.0"}) in [(i, status, seg) for i, _, status, seg in runs[0]]


def test_states_saved_before_version_segments_stay_valid():
    """``version_segments`` is not part of the config's fingerprint: a state saved before the setting existed
    (it has no version segments) is read by the config of today, whatever the setting says."""
    from inferwatch.streams.pipeline import config_fingerprint

    off = MonitorConfig.model_validate({"default": {"version_segments": False}})
    assert config_fingerprint(off) == config_fingerprint(MonitorConfig())
    lines = _versioned_events(3_000, 0.5)
    pipe = Pipeline.build(off, lines[:1000], [lines])
    assert Pipeline.from_bytes(pipe.to_bytes(), MonitorConfig()).monitor.models["m"].segment_monitors == {}


def test_late_versions_are_decided_in_event_order_and_one_offs_block_nothing():
    """Five new versions at once, one-off versions that never fill a baseline, and a column that appears
    while they take theirs: the same alerts whatever the batch cuts (state saved between batches), no alert
    about the late column in a version's detectors, and the canary's shift named by its version."""
    import numpy as np

    rng = np.random.default_rng(4)
    reference = _versioned_events(20_000, 0.0)

    def event(i: int) -> bytes:
        k = int(rng.integers(0, 12))
        version = f"a{k}" if k < 5 else (f"test-{i // 300}" if k == 5 else "1.9")
        score = float(rng.beta(2, 8)) + (0.3 if version == "a4" and i >= 50_000 else 0.0)
        features = {"x": float(rng.normal()), **({"y": float(rng.normal())} if i >= 25_000 else {})}
        return orjson.dumps({"event_id": f"e{i}", "model": "m", "model_version": version,
                             "timestamp": 1793491200 + i / 10, "features": features, "prediction": round(score, 4)})

    stream = [event(i) for i in range(20_000, 60_000)]  # (a4 has its baseline after ~24,000 of them)
    runs = []
    for cut in (40_000, 1_000, 777):
        pipe = Pipeline.build(MonitorConfig(), reference[:1000], [reference])
        alerts = []
        for lo in range(0, len(stream), cut):
            alerts += [(i, a.alert_id, a.feature, a.status, a.segment) for i, a in pipe.step(stream[lo:lo + cut], lo).alerts
                       if a.kind != "incident"]
            pipe = Pipeline.from_bytes(pipe.to_bytes(), MonitorConfig())
        runs.append(alerts)
    assert runs[0] == runs[1] == runs[2]
    mon = pipe.monitor.models["m"]
    assert {v for tag, v in mon.segment_monitors if tag == "model_version"} == {f"a{k}" for k in range(5)}
    assert all("y" not in seg.columns for seg in mon.segment_monitors.values())
    firing = [(i, feature, segment) for i, _, feature, status, segment in runs[0] if status == "firing"]
    assert firing[0][1:] == ("y", None)  # the new column, said once for the model
    assert [(f, s) for _, f, s in firing[1:2]] == [("prediction", {"model_version": "a4"})]
    assert 30_000 <= firing[1][0] < 30_000 + 1_500


def test_a_drift_that_a_new_version_brings_says_when_it_came_whatever_the_cuts():
    """A reference of version 1.9; at event 5,000 of the stream version 2.0 takes all the traffic and its
    score is higher: the whole model's drift alert says the version came some events before it (a release
    or a retrain is the likeliest cause); the same words whatever the batch cuts, the state saved between."""
    reference = _versioned_events(20_000, 0.0)
    stream = _versioned_events(15_000, 0.0, start=20_000, shift_from=25_000,
                               version_of=lambda c: "1.9")
    stream[5_000:] = [line.replace(b'"1.9"', b'"2.0"') for line in _versioned_events(
        10_000, 1.0, start=25_000, shift_from=25_000, version_of=lambda c: "2.0")]
    runs = []
    for cut in (15_000, 2_999):
        pipe = Pipeline.build(MonitorConfig(), reference[:1000], [reference])
        said = []
        for lo in range(0, len(stream), cut):
            said += [(i, a.alert_id, a.message) for i, a in pipe.step(stream[lo:lo + cut], lo).alerts
                     if a.status == "firing" and a.feature == "prediction" and a.segment is None]
            pipe = Pipeline.from_bytes(pipe.to_bytes(), MonitorConfig())
        runs.append(said)
    assert runs[0] == runs[1] and runs[0], runs
    row, _, message = runs[0][0]
    words = re.search(r"model_version '2.0' first seen ([\d,]+) events before\.$", message)
    assert 5_000 <= row < 6_000 and words and int(words.group(1).replace(",", "")) == row - 5_000, message
