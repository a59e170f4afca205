"""The errors inferwatch raises, in one tree.

::

    InferwatchError
     ├── ConfigError (ValueError)           the configuration cannot be used; the message names the field
     ├── InvalidEvent (ValueError)          an input is not a valid inference event; ``field`` says which
     ├── StateError                         a stored state cannot be used (version, config, undecodable)
     │    └── StaleState                    another worker moved the partition on since it was loaded
     ├── ServiceUnavailable (ConnectionError)   a server cannot be reached; callers retry with back-off
     │    ├── StateUnavailable              Redis
     │    └── KafkaUnavailable              Kafka
     └── MissingExtra (ImportError)         an optional part is not installed; the message says what to install

Library errors (redis, librdkafka, pydantic, YAML) are mapped to these at the
boundary where they are caught, so a caller catches ``InferwatchError`` (or
the builtin it also subclasses) and never a third party's type. The command
line answers an ``InferwatchError`` with one line and exit code 2; any other
exception is a bug and keeps its traceback.

>>> try:
...     raise InvalidEvent("expected a number, got a string", field="features.amount")
... except ValueError as exc:
...     exc.field, str(exc)
('features.amount', 'features.amount: expected a number, got a string')
"""

from __future__ import annotations

__all__ = [
    "InferwatchError", "ConfigError", "InvalidEvent", "StateError", "StaleState", "ServiceUnavailable",
    "StateUnavailable", "KafkaUnavailable", "MissingExtra", "require",
]


class InferwatchError(Exception):
    """Every error inferwatch raises on purpose."""


class ConfigError(InferwatchError, ValueError):
    """The configuration cannot be used; the message names the field, what was expected and what arrived."""


class InvalidEvent(InferwatchError, ValueError):
    """An input is not a valid inference event.

    ``field`` is the field at fault (``features.amount``, ``timestamp``), or
    None when the input as a whole is wrong (not JSON, not an object);
    ``reason`` is the message without the field.
    """

    def __init__(self, reason: str, field: str | None = None) -> None:
        self.reason, self.field = reason, field
        super().__init__(f"{field}: {reason}" if field else reason)


class StateError(InferwatchError):
    """A stored state cannot be used: another version, another config, or bytes that do not decode."""


class StaleState(StateError):
    """Another worker advanced this partition since we loaded it; nothing was written."""


class ServiceUnavailable(InferwatchError, ConnectionError):
    """A server cannot be reached; nothing was read or written. Callers retry with back-off."""


class StateUnavailable(ServiceUnavailable):
    """Redis cannot be reached."""


class KafkaUnavailable(ServiceUnavailable):
    """Kafka cannot be reached."""


class MissingExtra(InferwatchError, ImportError):
    """An optional part of inferwatch is not installed."""


def require(module: str, extra: str):
    """Import ``module``, or raise :class:`MissingExtra` naming the extra that installs it.

    >>> require("json", "test").__name__
    'json'
    >>> try:
    ...     require("no_such_module", "kafka")
    ... except MissingExtra as exc:
    ...     print(exc)
    this needs the 'kafka' extra: pip install 'inferwatch[kafka]' (no module named 'no_such_module')
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        raise MissingExtra(f"this needs the {extra!r} extra: pip install 'inferwatch[{extra}]' "
                           f"(no module named {exc.name!r})") from None
