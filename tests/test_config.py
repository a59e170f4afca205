"""A bad config fails at start-up and names the field."""

import pytest

from inferwatch.streams.config_file import ConfigError, load_config


@pytest.mark.parametrize("text, field", [
    ("models:\n  fraud:\n    block_size: 0\n", "models.fraud.block_size"),
    ("models:\n  fraud:\n    colums: {}\n", "models.fraud.colums"),
    ("default:\n  columns:\n    amount: {type: number}\n", "default.columns.amount.type"),
    ("default:\n  false_alarm_budget: {column_events_per_false_alarm: -3}\n", "column_events_per_false_alarm"),
    ("default:\n  columns:\n    amount: {type: numeric, detectors: [mix]}\n", "columns.amount.detectors"),
    ("- just\n- a list\n", "top level must be a mapping"),
    ("a: [unclosed\n", "not valid YAML"),
    ("default:\n  false_alarm_budget: {column_events_per_false_alarm: .inf}\n", "column_events_per_false_alarm"),
    ("default:\n  alert_policy: {cooldown_seconds: .inf}\n", "alert_policy.cooldown_seconds"),
    ("default:\n  alert_policy: {renotify_seconds: .nan}\n", "alert_policy.renotify_seconds"),
    ("default:\n  warmup_events: 100000000000000000000\n", "default.warmup_events"),
    ("limits: {max_models: 0}\n", "limits.max_models"),
])
def test_bad_config_names_the_field(tmp_path, text, field):
    path = tmp_path / "monitor.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        load_config(path)


def test_good_config_loads(tmp_path):
    path = tmp_path / "monitor.yaml"
    path.write_text("default:\n  warmup_events: 2000\n  alert_policy: {cooldown_seconds: 60}\n")
    cfg = load_config(path)
    assert cfg.default.warmup_events == 2000 and cfg.default.alert_policy.cooldown_seconds == 60


def test_a_yaml_alias_bomb_is_refused_at_once(tmp_path):
    """500 bytes that would expand to billions of items: refused before anything is built."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [*a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}]"
              for i in range(1, 9)]
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\nmodels: *a8\n")
    with pytest.raises(ConfigError, match="aliases"):
        load_config(path)


def test_a_deep_or_long_expression_is_a_config_error_not_a_recursion(tmp_path):
    from inferwatch.streams.guard import Guard

    for expression in ["(" * 500 + "amount > 1" + ")" * 500, " + ".join(["amount"] * 1000) + " > 1",
                       "not " * 2000 + "amount > 1"]:
        path = tmp_path / "deep.yaml"
        path.write_text("default:\n  columns: {amount: {type: numeric}}\n  rules:\n"
                        f"    - {{kind: expression, expression: '{expression}', action: flag}}\n")
        with pytest.raises(ConfigError, match="rules"):
            Guard.from_config(path)


def test_models_listed_under_models_inherit_default(tmp_path):
    """The shipped example's cool-down reaches card-fraud: mappings merge key by key, lists replace."""
    from inferwatch.testing.services import ROOT

    cfg = load_config(ROOT / "examples" / "monitor.yaml")
    assert cfg.for_model("card-fraud").alert_policy.cooldown_seconds == cfg.default.alert_policy.cooldown_seconds > 0
    path = tmp_path / "monitor.yaml"
    path.write_text("default:\n  columns: {amount: {type: numeric}}\n  segments: [region]\n"
                    "  rules: [{kind: not_null, field: amount}]\n"
                    "models:\n  a:\n    columns: {country: {type: categorical}}\n    segments: [tier]\n  b:\n")
    cfg = load_config(path)
    assert sorted(cfg.for_model("a").columns) == ["amount", "country"]
    assert cfg.for_model("a").segments == ["tier"] and len(cfg.for_model("a").rules) == 1
    assert cfg.for_model("b") == cfg.default


def test_a_boolean_column_can_be_declared(tmp_path):
    import io

    import orjson

    from inferwatch.streams.replay import replay_file

    path = tmp_path / "monitor.yaml"
    path.write_text("default:\n  warmup_events: 200\n  columns: {flag: {type: boolean}}\n")
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(orjson.dumps({"event_id": f"e{i}", "model": "m", "timestamp": 1_793_491_200 + i,
                                                "features": {"flag": i % 2 == 0}}) for i in range(400)))
    summary = replay_file(events, load_config(path), io.BytesIO())
    assert summary.events == 400 and summary.dead_letters == 0
