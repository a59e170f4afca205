"""Guardrails on batches: each rule kind and action, strongest action wins, errors at start-up."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import orjson
import pytest

from inferwatch.detectors.config import MonitorConfig, RuleConfig
from inferwatch.detectors.guard import BatchGuard
from inferwatch.detectors.types import Batch, CategoricalArray, NumericArray

KINDS = {"amount": "numeric", "country": "categorical", "prediction": "numeric", "prediction_backup": "numeric"}
ROOT = Path(__file__).resolve().parent.parent


def batch():
    return Batch("m", np.array(["a", "b", "c", "d"], dtype=object), np.zeros(4), {
        "amount": NumericArray(np.array([50.0, 25000.0, np.nan, 10.0])),
        "country": CategoricalArray.from_labels(["US", "BR", "DE", None]),
        "prediction": NumericArray(np.array([0.2, 0.99, 1.5, np.nan])),
        "prediction_backup": NumericArray(np.array([0.1, 0.3, 0.4, 0.5])),
    })


def decide(*rules):
    return [d.to_dict() for d in BatchGuard([RuleConfig(**r) for r in rules], KINDS).decide(batch())]


def test_range_fix_clips_the_prediction():
    out = decide({"kind": "range", "field": "prediction", "min": 0, "max": 1, "action": "fix"})
    assert [(d["action"], d["prediction"]) for d in out] == [("pass", 0.2), ("pass", 0.99), ("fix", 1.0), ("pass", None)]
    assert out[2]["original_prediction"] == 1.5 and out[2]["violations"][0]["field"] == "prediction"


def test_not_null_and_allowed_fix_features_with_configured_values():
    out = decide({"kind": "not_null", "field": "amount", "action": "fix", "fix_value": 0},
                 {"kind": "allowed", "field": "country", "values": ["US", "DE"], "action": "fix", "fix_value": "US"})
    assert [d.get("fixed") for d in out] == [None, {"country": "US"}, {"amount": 0}, None]


def test_fallback_to_a_value_or_a_named_output_and_block():
    out = decide({"kind": "expression", "expression": "prediction > 0.9", "action": "fallback", "fallback_value": 0.5})
    assert [d["prediction"] for d in out] == [0.2, 0.5, 0.5, None]
    out = decide({"kind": "expression", "expression": "prediction > 0.9", "action": "fallback",
                  "fallback_output": "prediction_backup"})
    assert [d["prediction"] for d in out] == [0.2, 0.3, 0.4, None]
    out = decide({"kind": "expression", "expression": 'amount > 10000 and country not in ["US"]', "action": "block"})
    assert [(d["action"], d["prediction"]) for d in out][:2] == [("pass", 0.2), ("block", None)]


def test_strongest_action_wins_and_every_violation_is_listed():
    out = decide({"kind": "range", "field": "amount", "max": 1000, "action": "flag"},
                 {"kind": "allowed", "field": "country", "values": ["US", "DE"], "action": "fix", "fix_value": "US"},
                 {"kind": "expression", "expression": "amount > 20000", "action": "block"})
    assert out[1]["action"] == "block" and len(out[1]["violations"]) == 3
    assert out[0]["action"] == "pass" and out[0]["violations"] == []


@pytest.mark.parametrize("rule, message", [
    ({"kind": "range", "field": "amont", "max": 1}, "unknown field 'amont'"),
    ({"kind": "range", "field": "country", "max": 1}, "needs a numeric field"),
    ({"kind": "expression", "expression": "country > 3"}, "compares a string with a number"),
    ({"kind": "expression", "expression": "prediction > 0.9", "action": "fallback", "fallback_output": "nope"},
     "unknown fallback_output"),
])
def test_bad_rules_fail_at_start_up(rule, message):
    with pytest.raises(ValueError, match=message):
        BatchGuard([RuleConfig(**rule)], KINDS)


@pytest.mark.parametrize("rule, message", [
    ({"kind": "range", "field": "a"}, "needs 'min' or 'max'"),
    ({"kind": "allowed", "field": "a"}, "needs 'values'"),
    ({"kind": "not_null", "field": "a", "action": "fix"}, "needs 'fix_value'"),
    ({"kind": "expression", "expression": "a > 1", "action": "fallback"}, "needs 'fallback_value'"),
    ({"kind": "range", "field": "a", "min": 2, "max": 1}, "max must be >= min"),
])
def test_rule_config_is_validated(rule, message):
    with pytest.raises(ValueError, match=message):
        MonitorConfig.model_validate({"models": {"m": {"rules": [rule]}}})


def test_replay_writes_one_decision_per_valid_event(tmp_path):
    config = tmp_path / "rules.yaml"
    config.write_text("default:\n  rules:\n    - {kind: allowed, field: country, values: [US, GB, DE, FR, ES], "
                      "action: fix, fix_value: US}\n    - {kind: expression, expression: 'amount > 100000', "
                      "action: block}\n")
    out = tmp_path / "out.jsonl"
    demo = ROOT / "examples" / "card_fraud_stream.jsonl"
    res = subprocess.run([sys.executable, "-m", "inferwatch", "replay", "--file", str(demo), "--config", str(config),
                          "--outputs-out", str(out)], capture_output=True, cwd=ROOT, timeout=300)
    assert res.returncode == 0, res.stderr.decode()
    decisions = [orjson.loads(x) for x in out.read_bytes().splitlines()]
    assert len(decisions) == 30_000
    fixed = [d for d in decisions if d["action"] == "fix"]
    assert fixed and all(d["fixed"] == {"country": "US"} for d in fixed)
    assert any(d["action"] == "block" and d["prediction"] is None for d in decisions)
    bad = tmp_path / "bad.yaml"
    bad.write_text("default:\n  rules:\n    - {kind: expression, expression: 'amout > 1'}\n")
    res = subprocess.run([sys.executable, "-m", "inferwatch", "replay", "--file", str(demo), "--config", str(bad)],
                         capture_output=True, cwd=ROOT, timeout=300)
    assert res.returncode == 2 and b"unknown field 'amout'" in res.stderr and res.stdout == b""


RULES = """
default:
  columns: {amount: {type: numeric}, country: {type: categorical}, tenure_days: {type: numeric},
            prediction: {type: numeric}}
  rules:
    - {kind: range, field: prediction, min: 0, max: 0.9, action: fix}
    - {kind: range, field: amount, min: 0, max: 5000, action: flag}
    - {kind: allowed, field: country, values: [US, GB, DE, FR, ES], action: fix, fix_value: US}
    - {kind: not_null, field: tenure_days, action: flag}
    - {kind: expression, expression: 'amount > 20000 and country not in ["US"]', action: block}
    - {kind: expression, expression: 'prediction > 0.95', action: fallback, fallback_value: 0.5}
"""


def test_in_process_guard_equals_replay_outputs(tmp_path):
    """Guard.check_batch and replay --outputs-out give the same decisions on the same events."""
    from inferwatch.streams.guard import Guard

    config = tmp_path / "rules.yaml"
    config.write_text(RULES)
    demo = ROOT / "examples" / "card_fraud_stream.jsonl"
    out = tmp_path / "out.jsonl"
    subprocess.run([sys.executable, "-m", "inferwatch", "replay", "--file", str(demo), "--config", str(config),
                    "--outputs-out", str(out)], check=True, capture_output=True, cwd=ROOT, timeout=300)
    from_replay = [orjson.loads(x) for x in out.read_bytes().splitlines()]
    lines = demo.read_bytes().splitlines()
    decisions = [d.to_dict() for d in Guard.from_config(config).check_batch(lines)]
    valid = [d for d in decisions if "error" not in d]
    assert valid == from_replay
    assert len(decisions) - len(valid) == 15
    assert {d["action"] for d in valid} >= {"pass", "flag", "fix", "block"}


def test_check_one_event_and_invalid_events():
    from inferwatch.streams.guard import Guard, InvalidEvent

    cfg = MonitorConfig.model_validate({"default": {
        "columns": {"amount": {"type": "numeric"}},
        "rules": [{"kind": "range", "field": "amount", "max": 100, "action": "flag"}]}})
    guard = Guard(cfg)
    event = {"event_id": "e", "model": "m", "timestamp": 1.0, "features": {"amount": 500}, "prediction": 0.1}
    assert guard.check(event).action == "flag"
    assert guard.check(orjson.dumps(event).decode()).violations[0].field == "amount"
    with pytest.raises(InvalidEvent) as missing:
        guard.check({"event_id": "e", "timestamp": 1.0, "features": {}})
    assert missing.value.field == "model"
    with pytest.raises(InvalidEvent) as wrong:
        guard.check({"event_id": "e", "model": "m", "timestamp": 1.0, "features": {"amount": "x"}})
    assert wrong.value.field == "features.amount"
    out = [d.to_dict() for d in guard.check_batch([event, b"garbage", "", {"event_id": "x"}])]
    assert [d.get("error") is None for d in out] == [True, False, False, False]
    assert all(d["action"] == "block" for d in out[1:])


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_JSON = st.recursive(st.none() | st.booleans() | st.floats(allow_nan=False) | st.text(max_size=8),
                     lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
                     max_leaves=12)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=200), _JSON, st.text(max_size=50)), max_size=5))
def test_arbitrary_input_never_crashes_the_guard(events):
    """Every input gets exactly one answer: a decision or an error, never an exception."""
    from inferwatch.streams.guard import Guard

    guard = Guard(MonitorConfig.model_validate({"default": {
        "columns": {"amount": {"type": "numeric"}},
        "rules": [{"kind": "expression", "expression": "amount > 1", "action": "block"}]}}))
    out = [d.to_dict() for d in guard.check_batch(events)]
    assert len(out) == len(events)
    assert all(("error" in d) or d["action"] in ("pass", "block") for d in out)


_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-2**60, 2**60), st.floats(allow_nan=True),
                    st.sampled_from(["US", "DE", "BR", "", "1.5", "true"]), st.lists(st.integers(), max_size=2))
_TIMES = st.one_of(st.sampled_from(["2026-11-01T00:00:00Z", "2026-11-01 00:00:00.5+02:00", "2026-02-30T00:00:00Z",
                                    "2026-11-01", "yesterday", "2026-11-01T00:00:00.123456789Z", ""]),
                   st.integers(-2**60, 2**60), st.floats(allow_nan=True), st.booleans(), st.none())
_EVENTS = st.fixed_dictionaries(
    {"event_id": st.one_of(st.text(max_size=5), st.integers()), "model": st.sampled_from(["fraud", "other"]),
     "timestamp": _TIMES,
     "features": st.dictionaries(st.sampled_from(["amount", "country", "tenure_days", "flag", "extra"]), _VALUES,
                                 max_size=5),
     "prediction": st.one_of(_VALUES, st.fixed_dictionaries({"score": _VALUES}))},
    optional={"tags": st.one_of(st.dictionaries(st.sampled_from(["region"]), st.sampled_from(["eu", "us"])),
                                st.integers())})

_PER_EVENT_RULES = RULES + """\
    - {kind: allowed, field: flag, values: ["true"], action: flag}
    - {kind: not_null, field: country, action: fallback, fallback_value: 0.0}
    - {kind: expression, expression: 'tenure_days / amount > 2 or country == "BR"', action: flag}
"""


@settings(max_examples=600, deadline=None)
@given(_EVENTS, st.booleans())
def test_per_event_path_gives_the_batch_decision(event, as_json):
    """Whenever ``check`` answers without the batch decoder, the answer is the batch decoder's."""

    guard = _guard_for_property()
    if as_json:
        try:
            event = orjson.dumps(event)
        except TypeError:
            return
    fast = guard.fast_check(event)
    (batch,) = guard.check_batch([event])
    if fast is not None:
        assert fast == batch


_GUARD = []


def _guard_for_property():
    import yaml

    from inferwatch.streams.guard import Guard

    if not _GUARD:
        raw = yaml.safe_load(_PER_EVENT_RULES)
        raw["default"]["columns"]["flag"] = {"type": "categorical"}
        cfg = MonitorConfig.model_validate(raw)
        _GUARD.append(Guard(cfg))
    return _GUARD[0]


def test_per_event_path_takes_every_clean_demo_event(tmp_path):
    """The fast path is not a corner case: every valid demo event is decided by it, as the batch path would."""
    from inferwatch.streams.guard import Guard

    config = tmp_path / "rules.yaml"
    config.write_text(RULES)
    guard = Guard.from_config(config)
    lines = (ROOT / "examples" / "card_fraud_stream.jsonl").read_bytes().splitlines()
    batch = [d.to_dict() for d in guard.check_batch(lines)]
    fast = [d and d.to_dict() for d in map(guard.fast_check, lines)]
    valid = [i for i, d in enumerate(batch) if "error" not in d]
    assert len(valid) == len(lines) - 15
    assert all(fast[i] == batch[i] for i in valid)
    assert {batch[i]["action"] for i in valid} >= {"pass", "fix", "flag"}


def test_a_lone_bad_event_is_judged_in_the_words_of_the_batch_reader():
    """A single event is screened alone (no batch reader); a batch goes through the reader: same verdicts."""
    from inferwatch.streams.guard import Guard, Rejection

    guard = Guard(MonitorConfig.model_validate({"default": {"columns": {"amount": {"type": "numeric"}}}}))
    good = b'{"event_id":"g","model":"m","timestamp":1793491200,"features":{"amount":1.0}}'
    bad = [b'{"event_id":"a","model":"m","timestamp":',
           b'{"event_id":"a","model":"m","timestamp":1793491200,"features":{"amount":"cheap"}}',
           b'{"event_id":"a","timestamp":1793491200,"features":{}}',
           b'{"event_id":"a","model":"m","timestamp":"yesterday","features":{}}',
           b'{"event_id":"a","model":"m","timestamp":1793491200000000000000000,"features":{}}',
           b'{"event_id":"a","model":"m","timestamp":"2400-01-01T00:00:00Z","features":{}}',
           b'{"event_id":"a","model":"m","timestamp":-5,"timestamp":1793491200,"features":{}}']
    batched = guard.check_batch([good] * 10 + bad)[10:]
    for line, in_batch in zip(bad, batched):
        (alone,) = guard.check_batch([line])
        assert type(alone) is type(in_batch), line
        if isinstance(alone, Rejection):
            assert (alone.field, alone.error) == (in_batch.field, in_batch.error), line
    assert sum(isinstance(d, Rejection) for d in batched) >= 6


def test_named_outputs_need_no_declaration_and_the_decision_carries_the_prediction_object():
    """A rule on ``prediction.score`` alone: the event with named outputs is decided (not refused), and the
    decision carries the prediction object with the output the rule fixed; both paths agree."""
    from inferwatch.streams.guard import Guard

    guard = Guard(MonitorConfig.model_validate({"default": {"rules": [
        {"kind": "range", "field": "prediction.score", "min": 0, "max": 0.9, "action": "fix"}]}}))
    event = {"event_id": "e1", "model": "churn", "timestamp": 1_793_491_200, "features": {"x": 1.0},
             "prediction": {"score": 1.3, "label": "go"}}
    fast = guard.check(event)
    (batched,) = guard.check_batch([orjson.dumps(event), b'{"event_id":"e2","model":"churn","timestamp":"x"}'][:1])
    assert fast.action == "fix" and fast.prediction == {"score": 0.9} and fast.original_prediction == {"score": 1.3}
    assert batched.to_dict() == fast.to_dict()


def test_without_rules_on_it_the_prediction_passes_through_as_it_came():
    from inferwatch.streams.guard import Guard

    guard = Guard(MonitorConfig.model_validate({"default": {"rules": [
        {"kind": "range", "field": "amount", "min": 0, "max": 100, "action": "flag"}]}}))
    objects = {"event_id": "e1", "model": "m", "timestamp": 1_793_491_200, "features": {"amount": 500.0},
               "prediction": {"score": 0.7, "label": "go"}}
    number = {**objects, "event_id": "e2", "prediction": 0.25}
    decisions = [guard.check(objects), guard.check(number)] + guard.check_batch(
        [orjson.dumps({**objects, "features": {"amount": "500"}}), orjson.dumps(number)])
    assert [d.prediction for d in decisions if hasattr(d, "prediction")] == [
        {"score": 0.7, "label": "go"}, 0.25, 0.25]
    assert decisions[0].action == "flag"


def test_a_feature_named_prediction_is_not_the_prediction():
    """A stacked model logs its upstream model's score as a feature named ``prediction``: rules and
    expressions on ``features.prediction`` read that feature, rules on ``prediction`` the model's own output,
    and an expression on the feature alone does not make the guard want a number for the output."""
    from inferwatch.streams.guard import Guard

    def event(upstream, output):
        return {"event_id": "a", "model": "m", "timestamp": "2026-11-01T00:00:00Z",
                "features": {"prediction": upstream}, "prediction": output}

    declared = {"features.prediction": {"type": "numeric"}}  # (an expression's fields are declared)
    numeric = MonitorConfig.model_validate({"default": {"columns": declared, "rules": [
        {"kind": "range", "field": "prediction", "min": 0, "max": 0.5, "action": "fix"},
        {"kind": "expression", "expression": "features.prediction > 0.5", "action": "flag"}]}})
    fixed, flagged = Guard(numeric).check_all([event(0.1, 0.9), event(0.9, 0.1)])
    assert (fixed.action, fixed.prediction, [v.field for v in fixed.violations]) == ("fix", 0.5, ["prediction"])
    assert (flagged.action, flagged.prediction, len(flagged.violations)) == ("flag", 0.1, 1)
    labels = MonitorConfig.model_validate({"default": {"columns": declared, "rules": [
        {"kind": "expression", "expression": "features.prediction > 0.5", "action": "flag"}]}})
    decided, = Guard(labels).check_all([event(0.9, "fraud")])
    assert (decided.action, decided.prediction) == ("flag", "fraud")


TWO_SHAPES = {"models": {
    "card-fraud": {"columns": {"amount": {"type": "numeric"}}, "rules": [
        {"kind": "range", "field": "prediction", "min": 0, "max": 1, "action": "fix"},
        {"kind": "range", "field": "amount", "min": 0, "max": 1000, "action": "flag"}]},
    "named": {"rules": [
        {"kind": "range", "field": "prediction.fraud", "min": 0, "max": 1, "action": "block"},
        {"kind": "range", "field": "prediction.amount_pred", "min": 0, "max": 1000, "action": "fix"}]}}}


def _shaped(event_id, model, prediction, **features):
    return {"event_id": event_id, "model": model, "timestamp": "2026-11-01T00:00:00Z",
            "features": features or {"x": 1.0}, "prediction": prediction}


def test_each_model_is_judged_by_its_own_rules_whatever_the_other_models_prediction_shape():
    """A model with a scalar prediction and one with named outputs in one config: the guard starts, each
    model's events are decided by its own rules on both paths, a model the config does not list passes by
    the default's (no rules), and a named-output model's scalar prediction is refused naming the field."""
    from inferwatch.streams.guard import Guard

    guard = Guard(MonitorConfig.model_validate(TWO_SHAPES))
    events = [_shaped("a", "card-fraud", 1.3, amount=5000.0),
              _shaped("b", "named", {"fraud": 1.5, "amount_pred": 12.0}),
              _shaped("c", "named", {"fraud": 0.5, "amount_pred": 5000.0}),
              _shaped("d", "other", {"anything": 1}),
              _shaped("e", "named", 0.5)]
    for decisions in (guard.check_all(events), guard.check_batch([orjson.dumps(e) for e in events])):
        a, b, c, d, e = (x.to_dict() for x in decisions)
        assert (a["action"], a["prediction"], [v["field"] for v in a["violations"]]) == (
            "fix", 1.0, ["prediction", "amount"])
        assert (b["action"], b["prediction"]) == ("block", None)
        assert (c["action"], c["prediction"]) == ("fix", {"fraud": 0.5, "amount_pred": 1000.0})
        assert (d["action"], d["prediction"]) == ("pass", {"anything": 1})
        assert (e["index"], e["field"]) == (4, "prediction")


def test_a_rule_that_fits_no_schema_still_fails_at_start_up():
    from inferwatch.streams.decode import Schema
    from inferwatch.streams.guard import Guard
    from inferwatch.streams.pipeline import Pipeline

    bad = MonitorConfig.model_validate({"models": {**TWO_SHAPES["models"], "typo": {
        "columns": {"country": {"type": "categorical"}},
        "rules": [{"kind": "range", "field": "country", "max": 1}]}}})
    for build in (lambda: Guard(bad), lambda: Pipeline(bad, Schema({"x": "numeric"}, "numeric"))):
        with pytest.raises(ValueError, match="models.typo.rules"):
            build()


def test_replay_decides_two_models_of_two_prediction_shapes_on_one_stream(tmp_path):
    """The same config and an interleaved stream of both models: replay starts (it failed at start-up,
    every model's rules compiled against the first model's schema), and its decisions equal the guard's."""
    from inferwatch.streams.guard import Guard

    rng = np.random.default_rng(3)
    events = []
    for i in range(3000):
        if i % 2:
            events.append(_shaped(f"e{i}", "named", {"fraud": round(float(rng.uniform(0, 1.2)), 3),
                                                    "amount_pred": round(float(rng.uniform(0, 1200)), 1)}))
        else:
            events.append(_shaped(f"e{i}", "card-fraud", round(float(rng.uniform(0, 1.2)), 3),
                                  amount=round(float(rng.uniform(0, 1200)), 1)))
    stream = tmp_path / "events.jsonl"
    stream.write_bytes(b"\n".join(orjson.dumps(e) for e in events) + b"\n")
    config = tmp_path / "rules.yaml"
    config.write_bytes(orjson.dumps({**TWO_SHAPES, "default": {"warmup_events": 500}}))  # YAML reads JSON
    out = tmp_path / "out.jsonl"
    res = subprocess.run([sys.executable, "-m", "inferwatch", "replay", "--file", str(stream), "--config",
                          str(config), "--outputs-out", str(out)], capture_output=True, cwd=ROOT, timeout=300)
    assert res.returncode == 0, res.stderr.decode()
    from_replay = [orjson.loads(x) for x in out.read_bytes().splitlines()]
    from_guard = [d.to_dict() for d in Guard(MonitorConfig.model_validate(TWO_SHAPES)).check_all(events)]
    assert from_replay == from_guard
    actions = {(d["model"], d["action"]) for d in from_replay}
    assert actions >= {("card-fraud", "fix"), ("card-fraud", "flag"), ("named", "block"), ("named", "fix")}


def test_the_guard_survives_odd_model_fields_and_many_models():
    """A ``model`` that is a list, or given twice (the decoder reads the first, a parser the last), is a
    rejection naming the field, not a crash; 1,000 listed models of one shape share one batch decoder."""
    from inferwatch.streams.guard import Guard, Rejection

    guard = Guard(MonitorConfig.model_validate(TWO_SHAPES))
    listed = _shaped("a", ["card-fraud"], 0.5)
    twice = (b'{"event_id":"b","model":"card-fraud","timestamp":"2026-11-01T00:00:00Z","features":{"x":1.0},'
             b'"prediction":{"fraud":0.5},"model":"named"}')
    for decisions in (guard.check_all([listed, twice]), guard.check_batch([listed, twice])):
        assert [(type(d), d.field) for d in decisions] == [(Rejection, "model"), (Rejection, "model")], decisions
    many = MonitorConfig.model_validate({"models": {f"m{k}": TWO_SHAPES["models"]["card-fraud"] for k in range(1000)}})
    guard = Guard(many)
    assert len({id(part) for part in guard._models.values()}) == 1
    decided = guard.check_batch([orjson.dumps(_shaped(f"e{k}", f"m{k}", 1.5, amount=1.0)) for k in range(1000)])
    assert {(d.action, d.prediction) for d in decided} == {("fix", 1.0)}


def test_a_boolean_prediction_comes_back_a_boolean_on_every_path(tmp_path):
    """A model that predicts true / false: the per-event path, the batch decoder (more than a few events) and
    replay --outputs-out give booleans (they gave the text "false", which a caller reads as true), with or
    without a declared kind, and for a named boolean output."""
    from inferwatch.streams.guard import Guard

    def event(i, prediction):
        return {"event_id": f"b{i}", "model": "flagger", "timestamp": 1_793_491_200 + i,
                "features": {"k": float(i)}, "prediction": prediction}

    plain = [event(i, i % 2 == 0) for i in range(20)]
    named = [event(i, {"flag": i % 2 == 0, "score": 0.5}) for i in range(20)]
    configs = [({"models": {"flagger": {"rules": [{"kind": "range", "field": "k", "min": 0, "max": 100,
                                                    "action": "flag"}]}}}, plain),
               ({"default": {"columns": {"prediction": {"type": "boolean"}}}}, plain),
               ({"default": {"columns": {"prediction.flag": {"type": "boolean"}}}}, named)]
    for raw, events in configs:
        guard = Guard(MonitorConfig.model_validate(raw))
        for decisions in (guard.check_all(events), guard.check_batch([orjson.dumps(e) for e in events])):
            said = [d.prediction if not isinstance(d.prediction, dict) else d.prediction["flag"] for d in decisions]
            assert said == [i % 2 == 0 for i in range(20)], (raw, said)
    stream, out, config = tmp_path / "events.jsonl", tmp_path / "out.jsonl", tmp_path / "rules.yaml"
    stream.write_bytes(b"\n".join(orjson.dumps(e) for e in plain) + b"\n")
    config.write_bytes(orjson.dumps(configs[0][0]))
    subprocess.run([sys.executable, "-m", "inferwatch", "replay", "--file", str(stream), "--config", str(config),
                    "--outputs-out", str(out)], capture_output=True, cwd=ROOT, timeout=300)
    assert [orjson.loads(x)["prediction"] for x in out.read_bytes().splitlines()] == [i % 2 == 0 for i in range(20)]


def test_a_rule_on_a_column_another_model_declares_keeps_the_model_s_own_prediction_shape():
    """Model card's expression reads ``amount``, which only model other declares; model named has named
    outputs. The guard widens card's fields with other's ``amount``, not with named's outputs (card's
    scalar predictions were all refused as "expected an object of outputs"); and a prediction sent as the
    text "true" passes through as text on the batch path too."""
    from inferwatch.streams.guard import Guard

    guard = Guard(MonitorConfig.model_validate({"models": {
        "card": {"rules": [{"kind": "range", "field": "prediction", "min": 0, "max": 1, "action": "fix"},
                           {"kind": "expression", "expression": "amount > 100", "action": "flag"}]},
        "other": {"columns": {"amount": {"type": "numeric"}}},
        "named": {"rules": [{"kind": "range", "field": "prediction.fraud", "min": 0, "max": 1, "action": "block"}]},
        "free": {"rules": [{"kind": "range", "field": "k", "min": 0, "max": 10, "action": "flag"}]}}}))
    card = _shaped("a", "card", 1.3, amount=500.0)
    for decision in (guard.check(card), *guard.check_batch([orjson.dumps(card)] * 9)):
        assert (decision.action, decision.prediction) == ("fix", 1.0), decision
    texts = [_shaped(f"t{i}", "free", ["true", "false", "yes"][i % 3], k=1.0) for i in range(12)]
    for decisions in (guard.check_all(texts), guard.check_batch([orjson.dumps(e) for e in texts])):
        assert [d.prediction for d in decisions] == [["true", "false", "yes"][i % 3] for i in range(12)]
