"""inferwatch: a streaming monitor for machine-learning models in production.

The public surface, for use in Python (the command line is ``inferwatch``)::

    from inferwatch import Guard, load_config, replay_file

* :class:`Guard`: guardrails for a serving path, in process (``check``, ``check_batch``);
* :class:`Monitor`, :class:`MonitorConfig`, :func:`load_config`: the monitoring core and its configuration;
* :func:`replay_file`: run the core over a JSON-lines file with in-memory state;
* :class:`Pipeline`: the step every driver shares (decode, guard, monitor; state to and from bytes);
* :class:`Alert`, :class:`Decision`: the records inferwatch emits;
* the errors of :mod:`inferwatch.errors`.

Two layers: :mod:`inferwatch.detectors` is the pure core (arrays in, alerts
out; no I/O, no clocks), :mod:`inferwatch.streams` does all I/O (files,
Kafka, Redis, HTTP, the CLI). Names are imported on first use, so
``import inferwatch`` loads no Kafka, Redis, HTTP or plotting library.

>>> import inferwatch
>>> inferwatch.MonitorConfig().default.warmup_events
10000
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import (
    ConfigError,
    InferwatchError,
    InvalidEvent,
    KafkaUnavailable,
    MissingExtra,
    ServiceUnavailable,
    StaleState,
    StateError,
    StateUnavailable,
)

__version__ = "0.2.0"

_LAZY = {
    "Guard": "inferwatch.streams.guard",
    "Monitor": "inferwatch.detectors.monitor",
    "MonitorConfig": "inferwatch.detectors.config",
    "load_config": "inferwatch.streams.config_file",
    "replay_file": "inferwatch.streams.replay",
    "Pipeline": "inferwatch.streams.pipeline",
    "Alert": "inferwatch.detectors.types",
    "Decision": "inferwatch.detectors.types",
}

__all__ = [
    "Guard", "Monitor", "MonitorConfig", "load_config", "replay_file", "Pipeline", "Alert", "Decision",
    "InferwatchError", "ConfigError", "InvalidEvent", "StateError", "StaleState", "ServiceUnavailable",
    "StateUnavailable", "KafkaUnavailable", "MissingExtra", "__version__",
]

if TYPE_CHECKING:
    from .detectors.config import MonitorConfig
    from .detectors.monitor import Monitor
    from .detectors.types import Alert, Decision
    from .streams.config_file import load_config
    from .streams.guard import Guard
    from .streams.pipeline import Pipeline
    from .streams.replay import replay_file


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'inferwatch' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
