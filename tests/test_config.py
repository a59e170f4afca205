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
