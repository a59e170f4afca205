"""Read ``monitor.yaml`` and fail at start-up, naming the field, when it is wrong."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from ..detectors.config import MonitorConfig
from ..errors import ConfigError

__all__ = ["ConfigError", "load_config"]


MAX_CONFIG_BYTES = 1 << 20


def _plain_yaml(text: str):
    """``yaml.safe_load``, refusing aliases (``*name``): a few hundred bytes of nested aliases expand to
    gigabytes (a "billion laughs"); a monitoring config has no use for them.

    >>> _plain_yaml("a: &x [1, 2]\\nb: *x")
    Traceback (most recent call last):
    ...
    inferwatch.errors.ConfigError: line 2: YAML aliases (*name) are not supported in a config
    """
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.AliasEvent):
            raise ConfigError(f"line {event.start_mark.line + 1}: YAML aliases (*name) are not supported in a config")
    return yaml.safe_load(text)


def load_config(path: str | Path | None) -> MonitorConfig:
    """Load and validate a config file; ``None`` gives the calibrated defaults.

    >>> load_config(None).default.warmup_events
    10000
    """
    if path is None:
        return MonitorConfig()
    path = Path(path)
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise ConfigError(f"{path}: {path.stat().st_size} bytes, over the cap of {MAX_CONFIG_BYTES} for a config")
        text = path.read_text(encoding="utf-8")
        raw = _plain_yaml(text)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping, got {type(raw).__name__}")
    if "kafka" in raw:  # I/O settings, not the monitor's: the Kafka clients of this process take them
        from .kafka_security import use_config_section

        raw = dict(raw)
        use_config_section(raw.pop("kafka"), str(path))
    try:
        return MonitorConfig.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "(top level)"
            got = f" (got {err['input']!r})" if "input" in err and not isinstance(err["input"], dict) else ""
            problems.append(f"{where}: {err['msg']}{got}")
        raise ConfigError(f"{path}: " + "; ".join(problems)) from None
