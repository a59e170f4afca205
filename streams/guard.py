"""The in-process guard: ``Guard.from_config(path)``, ``check(event)``, ``check_batch(events)``.

No Kafka, no Redis: the same decoder and the same vectorised rules as
``replay --outputs-out``, so a decision is the same whichever way it is asked.

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
>>> d["action"], d["prediction"], d["original_prediction"]
('fix', 1.0, 1.4)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import orjson

from detectors.config import MonitorConfig

from .config_file import load_config
from .decode import Decoder, Schema
from .replay import Guards

__all__ = ["Guard", "InvalidEvent"]


class InvalidEvent(ValueError):
    """The event is not a valid inference event; the message says why."""


class Guard:
    """Guardrails for a serving path. Field kinds come from the config's ``columns``."""

    def __init__(self, config: MonitorConfig) -> None:
        kinds: dict[str, str] = {}
        for model in [*config.models.values(), config.default]:
            for name, column in model.columns.items():
                if column.type:
                    kinds[name] = column.type
        prediction = kinds.pop("prediction", None)
        outputs = {k[len("prediction."):]: v for k, v in kinds.items() if k.startswith("prediction.")}
        features = {k: v for k, v in kinds.items() if not k.startswith("prediction.")}
        schema = Schema(features, outputs or prediction or "numeric")
        self.config = config
        self.decoder = Decoder(schema, config.limits)
        self.guards = Guards(config, schema)

    @classmethod
    def from_config(cls, path: str | Path) -> "Guard":
        return cls(load_config(path))

    def check(self, event: Any) -> dict:
        """The decision for one event (a dict, or its JSON as bytes or str)."""
        (decision,) = self.check_batch([event])
        if "error" in decision:
            raise InvalidEvent(decision["error"])
        return decision

    def check_batch(self, events: Iterable[Any]) -> list[dict]:
        """A decision per event, in order; an invalid event gets ``{"index", "error", "action": "block"}``."""
        lines = [_raw(e) for e in events]
        decoded = self.decoder.decode(lines)
        out: list[dict | None] = [None] * len(lines)
        for dead in decoded.dead:
            out[dead.index] = {"index": dead.index, "error": dead.error, "action": "block"}
        for i in range(len(lines)):
            if out[i] is None and not lines[i].strip():
                out[i] = {"index": i, "error": "empty event", "action": "block"}
        for batch, rows in zip(decoded.batches, decoded.rows):
            for row, decision in zip(rows.tolist(), self.guards.for_model(batch.model).decide(batch)):
                out[row] = decision
        return out


def _raw(event: Any) -> bytes:
    if isinstance(event, bytes):
        return event.replace(b"\n", b" ")
    if isinstance(event, str):
        return event.replace("\n", " ").encode()
    return orjson.dumps(event)
