"""The in-process guard: ``Guard.from_config(path)``, ``check(event)``, ``check_batch(events)``.

No Kafka, no Redis: a driver over the same pipeline step as ``replay
--outputs-out`` (:meth:`Pipeline.decide`), so a decision is the same
whichever way it is asked. Decisions are :class:`Decision` records.
``check`` takes a per-event path for the common, clean event (plain Python
values, the rules' per-event form: tens of microseconds); anything unusual
(a type to coerce, an odd timestamp, an invalid event) goes through the
batch decoder, which decides and explains. A property test holds the two
paths to the same answers.

>>> import tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "rules.yaml")
>>> _ = open(path, "w").write('''
... default:
...   columns: {amount: {type: numeric}, prediction: {type: numeric}}
...   rules:
...     - {kind: range, field: prediction, min: 0, max: 1, action: fix}
...     - {kind: expression, expression: "amount > 10000", action: block}
... ''')
>>> guard = Guard.from_config(path)
>>> event = {"event_id": "e1", "model": "fraud", "timestamp": "2026-11-01T00:00:00Z",
...          "features": {"amount": 20.0}, "prediction": 1.4}
>>> d = guard.check(event)
>>> d.action, d.prediction, d.original_prediction
('fix', 1.0, 1.4)
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Union

import msgspec
import orjson

from ..detectors.config import MonitorConfig
from ..detectors.guard import BatchGuard
from ..detectors.types import Decision
from ..errors import InvalidEvent
from .config_file import load_config
from .decode import (
    UNLISTED,
    DeadLetter,
    Schema,
    count_keys,
    declared_kinds,
    feature_column,
    feature_of,
    is_output,
    key_marks,
    rule_fields,
)
from .pipeline import Pipeline, as_sent
from .timeparse import from_epoch, in_range, rfc3339_one

__all__ = ["Guard", "InvalidEvent", "Rejection"]


class Rejection(msgspec.Struct):
    """An input of a batch that is not a valid event: its index, the field at fault (or None), why."""

    index: int
    field: Union[str, None]
    error: str
    action: str = "block"

    def to_dict(self) -> dict:
        return msgspec.to_builtins(self)


class Guard:
    """Guardrails for a serving path: each model is judged by its own rules and columns (a model the config
    does not list, by ``default``'s); field kinds come from the config's ``columns`` and the rules' fields."""

    def __init__(self, config: MonitorConfig) -> None:
        self.config = config
        shapes: dict[tuple, list[str]] = defaultdict(list)  # models whose rules see the same fields share a part
        for model in [*config.models, UNLISTED]:
            shapes[_shape(config, model)].append(model)
        parts = {model: part for shape, models in shapes.items() for part in [_ModelGuard(config, shape, models)]
                 for model in models}
        self._default = parts.pop(UNLISTED)
        self._models = parts

    @classmethod
    def from_config(cls, path: str | Path) -> Guard:
        return cls(load_config(path))

    def _of(self, model: object) -> _ModelGuard:
        return self._models.get(model, self._default) if isinstance(model, str) else self._default

    @property
    def guards(self):
        """The rules of the default's guard (:class:`inferwatch.streams.pipeline.Guards`)."""
        return self._default.guards

    def check(self, event: Any) -> Decision:
        """The decision for one event (a dict, or its JSON as bytes or str); :class:`InvalidEvent` if it is not one."""
        decision = self.fast_check(event)
        if decision is None:
            (decision,) = self.check_batch([event])
        if isinstance(decision, Rejection):
            prefix = f"{decision.field}: "
            reason = decision.error[len(prefix):] if decision.field and decision.error.startswith(prefix) else decision.error
            raise InvalidEvent(reason, decision.field)
        return decision

    def fast_check(self, event: Any, size: int | None = None) -> Decision | None:
        """The decision by the per-event path, or None when the event needs the batch decoder.

        ``size``: the event's JSON size in bytes, when the caller knows it.
        """
        try:
            if isinstance(event, dict):
                size = len(orjson.dumps(event)) if size is None else size
            elif isinstance(event, (bytes, str)):
                text = event if isinstance(event, bytes) else event.encode()
                size = len(text)
                event = orjson.loads(text)
                if not isinstance(event, dict) or key_marks(text) > count_keys(event):
                    return None  # duplicate keys: orjson keeps the last, the batch decoder the first; it decides
            else:
                return None
        except (orjson.JSONDecodeError, TypeError, UnicodeEncodeError):
            return None
        if size > self.config.limits.max_message_bytes:
            return None
        return self._of(event.get("model")).fast_check(event)

    def check_all(self, events: list[Any]) -> list[Decision | Rejection]:
        """Like :meth:`check_batch`: the per-event path for clean events, one batch decode for the rest."""
        out: list[Decision | Rejection | None] = [self.fast_check(e) for e in events]
        rest = [i for i, d in enumerate(out) if d is None]
        if rest:
            for i, decision in zip(rest, self.check_batch([events[i] for i in rest])):
                if isinstance(decision, Rejection):
                    decision.index = i
                out[i] = decision
        return out  # type: ignore[return-value]

    def check_batch(self, events: Iterable[Any]) -> list[Decision | Rejection]:
        """A decision per event, in order; an invalid event gets a :class:`Rejection` (action ``block``)."""
        events = list(events)
        if not self._models:
            return self._default.check_batch(events)
        groups: dict[int, list[int]] = defaultdict(list)  # each part's events
        parts: dict[int, _ModelGuard] = {}
        for i, event in enumerate(events):
            part = self._of(_model_of(event))
            groups[id(part)].append(i)
            parts[id(part)] = part
        out: list[Decision | Rejection | None] = [None] * len(events)
        for key, indices in groups.items():
            part = parts[key]
            for i, decision in zip(indices, part.check_batch([events[i] for i in indices])):
                if isinstance(decision, Rejection):
                    decision.index = i
                out[i] = decision
        return out  # type: ignore[return-value]


def _shape(config: MonitorConfig, model: str) -> tuple:
    """The fields a model's guard reads (``UNLISTED``: the default's): (features, outputs, prediction, as is),
    from the kinds its own config gives them, or, when its rules need more (an expression on a column only
    another model declares), from every model's config, its own first."""
    shape = _fields(config, model, {})
    rules = config.for_model(model).rules
    try:
        kinds = _schema(shape).kinds()
        BatchGuard(rules, {k: "numeric" if v == "numeric" else "categorical" for k, v in kinds.items()})
    except ValueError:  # (only features: the prediction's shape is the model's own)
        wider = {k: v for k, v in {**rule_fields(config), **declared_kinds(config)}.items() if not is_output(k)}
        return _fields(config, model, wider)
    return shape


def _schema(shape: tuple) -> Schema:
    features, outputs, prediction, as_is = dict(shape[0]), dict(shape[1]), shape[2], shape[3]
    return Schema(features, outputs or prediction or ("categorical" if as_is else "numeric"))


def _fields(config: MonitorConfig, model: str, wider: dict[str, str]) -> tuple:
    kinds = {**wider, **rule_fields(config, model), **declared_kinds(config, model)}  # a rule's field: no declaring
    prediction = kinds.pop("prediction", None)
    outputs = {k[len("prediction."):]: v for k, v in kinds.items() if k.startswith("prediction.")}
    features = {feature_of(k): v for k, v in kinds.items() if not k.startswith("prediction.")}
    # no rule and no column says what the prediction is: it passes through as it came (a number, an object)
    as_is = not outputs and prediction is None and not any(
        _PREDICTION_NAMED.search(r.expression or "") for r in config.for_model(model).rules)
    return tuple(sorted(features.items())), tuple(sorted(outputs.items())), prediction, as_is


class _ModelGuard:
    """The guard of the models of one :func:`_shape` (``UNLISTED`` among them: the default's, for every model
    the config does not list): one batch decoder, each model's own rules."""

    def __init__(self, config: MonitorConfig, shape: tuple, models: list[str]) -> None:
        outputs, prediction, self._as_is = dict(shape[1]), shape[2], shape[3]
        schema = _schema(shape)
        self.config = config
        self.pipeline = Pipeline(config, schema, only=[m if m in config.models else "default" for m in models])
        self.guards = self.pipeline.guards
        self._features = list(schema.features.items())
        self._outputs = list(outputs.items()) if outputs else None
        self._prediction = None if outputs else (prediction or "numeric")
        self._booleans = "boolean" in (*outputs.values(), prediction)

    def fast_check(self, event: dict) -> Decision | None:
        parsed = self._row(event)
        if parsed is None:
            return None
        event_id, model, row = parsed
        decision = self.guards.for_model(model).decide_one(event_id, model, row)
        return as_sent([decision], self.pipeline.schema)[0] if self._booleans else decision

    def _row(self, event: dict) -> tuple[str, str, dict] | None:
        """(event id, model, plain values) of a clean event, or None if anything needs the batch decoder."""
        event_id, model, features = event.get("event_id"), event.get("model"), event.get("features")
        if type(event_id) is not str or type(model) is not str or type(features) is not dict:
            return None
        if len(features) > self.config.limits.max_features or not _time_ok(event.get("timestamp")):
            return None
        tags = event.get("tags")
        if tags is not None and (type(tags) is not dict or any(type(v) is not str for v in tags.values())):
            return None
        for value in features.values():
            if type(value) not in _SCALARS:
                return None
        row: dict[str, object] = {}
        for name, kind in self._features:
            value = _plain(features.get(name), kind)
            if value is _WRONG:
                return None
            row[feature_column(name)] = value
        prediction = event.get("prediction")
        if self._outputs is not None:
            if prediction is not None and type(prediction) is not dict:
                return None
            for name, kind in self._outputs:
                value = _plain((prediction or {}).get(name), kind)
                if value is _WRONG:
                    return None
                row["prediction." + name] = value
        elif self._as_is:
            row["prediction"] = prediction
        else:
            value = _plain(prediction, self._prediction)
            if value is _WRONG:
                return None
            row["prediction"] = value
        return event_id, model, row


    def check_batch(self, events: Iterable[Any]) -> list[Decision | Rejection]:
        """A decision per event, in order; an invalid event gets a :class:`Rejection` (action ``block``)."""
        lines: list[bytes] = []
        out: list[Decision | Rejection | None] = []
        for i, event in enumerate(events):
            try:
                lines.append(_raw(event))
                out.append(None)
            except (TypeError, UnicodeEncodeError) as exc:  # an integer over 64 bits, a set, a lone surrogate
                out.append(Rejection(i, None, f"not a JSON event: {exc}"))
                lines.append(b"")
        if len(lines) <= _SCREEN_ALONE:  # a few events: judge each alone first, the batch reader costs ~1 ms
            for i, line in enumerate(lines):
                found = self.pipeline.decoder.problem(line) if out[i] is None and line.strip() else None
                if found is not None:
                    dead = DeadLetter.of(*found, i, line)
                    out[i] = Rejection(i, dead.field, dead.error)
                    lines[i] = b""
        if all(d is not None for d in out):  # every event judged alone: nothing left for the batch reader
            return out  # type: ignore[return-value]
        result = self.pipeline.decide(lines)
        for dead in result.dead:
            out[dead.index] = Rejection(dead.index, dead.field, dead.error)
        for i in range(len(lines)):
            if out[i] is None and not lines[i].strip():
                out[i] = Rejection(i, None, "empty event")
        for row, decision in result.decisions:
            if self._as_is:  # no rule reads the prediction: it goes back as it came (or as a rule replaced it)
                came = _as_it_came(lines[row], decision.original_prediction)
                if decision.prediction == decision.original_prediction:
                    decision.prediction = came
                decision.original_prediction = came
            out[row] = decision
        return out  # type: ignore[return-value]


# an expression that reads the prediction (a feature's column features.prediction does not)
_PREDICTION_NAMED = re.compile(r"(?<![\w.])prediction\b")
_SCALARS = (type(None), bool, int, float, str)
_SCREEN_ALONE = 8
_WRONG = object()
_LIMIT = 2**53


def _plain(value, kind: str):
    """The rules' view of one value (float, label or None), or _WRONG if the batch decoder must decide."""
    if value is None:
        return None
    t = type(value)
    if kind == "numeric":
        if t is float:
            return value if value - value == 0.0 else _WRONG
        return float(value) if t is int and -_LIMIT <= value <= _LIMIT else _WRONG
    if kind == "boolean":
        return ("true" if value else "false") if t is bool else _WRONG
    return value if t is str else _WRONG


def _time_ok(ts) -> bool:
    """A timestamp the per-event path can take as it is: RFC 3339 or an epoch number, in range."""
    t = type(ts)
    if t is str:
        return bool(in_range(rfc3339_one(ts)))
    if t is int:
        return -_LIMIT <= ts <= _LIMIT and bool(in_range(from_epoch(ts)))
    return t is float and ts - ts == 0.0 and bool(in_range(from_epoch(ts)))


def _as_it_came(line: bytes, read):
    """The prediction of an event as it came (the batch reader reads ``true`` and ``"true"`` alike): from
    the event itself, else ``read`` revived."""
    try:
        event = orjson.loads(line)
    except orjson.JSONDecodeError:
        return _revive(read)
    return event.get("prediction") if isinstance(event, dict) else _revive(read)


def _revive(value):
    """A prediction the batch reader read as text, as it came: an object, an array or a number."""
    if isinstance(value, str):
        try:
            parsed = orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
        return parsed if isinstance(parsed, (dict, list, int, float)) and not isinstance(parsed, bool) else value
    return value


def _model_of(event: Any) -> object:
    """The ``model`` field of an event (a dict, or its JSON), or None when it has none or is not JSON."""
    if isinstance(event, (bytes, str)):
        try:
            event = orjson.loads(event)
        except orjson.JSONDecodeError:
            return None
    return event.get("model") if isinstance(event, dict) else None


def _raw(event: Any) -> bytes:
    if isinstance(event, bytes):
        return event.replace(b"\n", b" ")
    if isinstance(event, str):
        return event.replace("\n", " ").encode()
    return orjson.dumps(event)
