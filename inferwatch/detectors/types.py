"""Shared shapes of the core: columnar batches in, transitions and alerts out.

Only plain data crosses the ``detectors`` boundary: numpy arrays, strings and
numbers. A numeric column is a float64 array with NaN for missing; a
categorical column is dictionary-encoded (integer codes into a tuple of
labels, -1 for missing), the same layout Arrow and polars use, so that the
decoder can hand its columns over without a per-event Python loop.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Union

import msgspec
import numpy as np

from .timefmt import rfc3339

__all__ = ["NumericArray", "CategoricalArray", "Column", "TextArray", "Batch", "Alert", "Violation", "Decision"]


@dataclass(frozen=True)
class NumericArray:
    """Float values, NaN where the value is missing."""

    values: np.ndarray

    def __len__(self) -> int:
        return len(self.values)

    def take(self, rows: np.ndarray) -> NumericArray:
        return NumericArray(self.values[rows])

    def slice(self, start: int, stop: int) -> NumericArray:
        return NumericArray(self.values[start:stop])


@dataclass(frozen=True)
class CategoricalArray:
    """Dictionary-encoded labels: ``categories[codes[i]]``, code -1 is missing.

    >>> col = CategoricalArray.from_labels(["US", None, "DE", "US"])
    >>> col.codes.tolist(), col.categories
    ([1, -1, 0, 1], ('DE', 'US'))
    """

    codes: np.ndarray
    categories: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.codes)

    def take(self, rows: np.ndarray) -> CategoricalArray:
        return CategoricalArray(self.codes[rows], self.categories)

    def slice(self, start: int, stop: int) -> CategoricalArray:
        return CategoricalArray(self.codes[start:stop], self.categories)

    @classmethod
    def from_labels(cls, labels) -> CategoricalArray:
        """Encode a sequence of labels (None for missing); for tests and small inputs."""
        cats = tuple(sorted({str(v) for v in labels if v is not None}))
        index = {c: i for i, c in enumerate(cats)}
        codes = np.array([-1 if v is None else index[str(v)] for v in labels], dtype=np.int64)
        return cls(codes, cats)


Column = Union[NumericArray, CategoricalArray]


@dataclass(frozen=True)
class TextArray:
    """Strings packed end to end in UTF-8 (Arrow's layout): item ``i`` is ``data[offsets[i]:offsets[i + 1]]``.

    Event ids and timestamps cross from the decoder this way: one buffer, not
    a Python string per event. Strings are made only for the rows that need one.

    >>> ids = TextArray.from_list(["a", "bc", "déf"])
    >>> ids[2], ids.take(np.array([1, 0])).tolist(), len(TextArray.concat([ids, ids]))
    ('déf', ['bc', 'a'], 6)
    >>> TextArray(b"XXabcdYY", np.array([2, 3, 6])).tolist()  # offsets into a larger buffer
    ['a', 'bcd']
    """

    data: bytes
    offsets: np.ndarray

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i) -> str:
        return self.data[self.offsets[i]:self.offsets[i + 1]].decode("utf-8")

    def tolist(self) -> list[str]:
        if len(self.offsets) > 1 and self.data.isascii() and b"\n" not in self.data:  # the usual ids: one split
            first, last = int(self.offsets[0]), int(self.offsets[-1])
            raw = np.frombuffer(self.data, dtype=np.uint8)[first:last]
            return np.insert(raw, self.offsets[1:-1] - first, 10).tobytes().decode("ascii").split("\n")
        offsets = self.offsets.tolist()
        data = self.data
        return [data[a:b].decode("utf-8") for a, b in zip(offsets, offsets[1:])]

    def take(self, rows: np.ndarray) -> TextArray:
        rows = np.asarray(rows, dtype=np.int64)
        starts, lengths = self.offsets[rows], self.offsets[rows + 1] - self.offsets[rows]
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        source = np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1])
        return TextArray(np.frombuffer(self.data, dtype=np.uint8)[source].tobytes(), offsets)

    def slice(self, start: int, stop: int) -> TextArray:
        """Items ``start .. stop - 1``: one copy of their bytes.

        >>> TextArray.from_list(["a", "bc", "d"]).slice(1, 3).tolist()
        ['bc', 'd']
        """
        first, last = self.offsets[start], self.offsets[stop]
        return TextArray(self.data[first:last], self.offsets[start:stop + 1] - first)

    @classmethod
    def from_list(cls, strings) -> TextArray:
        strings = strings if isinstance(strings, list) else list(strings)
        try:
            joined = "".join(strings)
        except TypeError:  # not all strings
            joined = None
        if joined is not None and joined.isascii():  # the usual ids: one encode, lengths in characters
            offsets = np.zeros(len(strings) + 1, dtype=np.int64)
            np.cumsum(np.fromiter(map(len, strings), dtype=np.int64, count=len(strings)), out=offsets[1:])
            return cls(joined.encode("ascii"), offsets)
        encoded = [str(s).encode("utf-8") for s in strings]
        offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum(np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded)), out=offsets[1:])
        return cls(b"".join(encoded), offsets)

    @classmethod
    def concat(cls, parts: list[TextArray]) -> TextArray:
        shifts = np.cumsum([0] + [len(p.data) for p in parts[:-1]])
        offsets = np.concatenate([[0]] + [p.offsets[1:] + s for p, s in zip(parts, shifts)]).astype(np.int64)
        return cls(b"".join(p.data for p in parts), offsets)


@dataclass(frozen=True)
class Batch:
    """Decoded events of one model, in stream order.

    ``times`` are event times in epoch seconds. ``columns`` maps a column name
    (a feature, ``prediction`` or ``prediction.<output>``) to its values.
    ``segments`` maps a tag name to its values, for per-segment statistics.
    """

    model: str
    event_ids: TextArray
    times: np.ndarray
    columns: Mapping[str, Column]
    segments: Mapping[str, CategoricalArray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.event_ids, TextArray):  # a list or array of ids, as tests and small callers write them
            object.__setattr__(self, "event_ids", TextArray.from_list(self.event_ids))

    def __len__(self) -> int:
        return len(self.times)

    def take(self, rows: np.ndarray) -> Batch:
        return Batch(
            self.model,
            self.event_ids.take(rows),
            self.times[rows],
            {k: c.take(rows) for k, c in self.columns.items()},
            {k: c.take(rows) for k, c in self.segments.items()},
        )

    def slice(self, start: int, stop: int) -> Batch:
        """Events ``start .. stop - 1`` (views of the arrays, where numpy can)."""
        return Batch(
            self.model,
            self.event_ids.slice(start, stop),
            self.times[start:stop],
            {k: c.slice(start, stop) for k, c in self.columns.items()},
            {k: c.slice(start, stop) for k, c in self.segments.items()},
        )


@dataclass(frozen=True)
class Alert:
    """One alert as DESIGN.md section 3 defines it, minus ``position``.

    The core knows rows, not stream positions: ``row`` is the index in the
    batch the alert fired at; the I/O layer turns it into a ``position``.
    """

    alert_id: str
    status: str
    model: str
    feature: str | None
    kind: str
    detector: str
    severity: str
    score: float
    threshold: float
    event_time: float
    row: int
    message: str
    event_id: str = ""
    segment: dict[str, str] | None = None  # {"region": "eu"}: found by that segment's own detectors
    incident_id: str | None = None  # shared by the alerts of one incident (see alerts.py)
    incident: dict | None = None  # an incident record's summary (kind "incident"; see incidents.py)
    factor: float | None = None  # a numeric column's median now over its reference median (not on the wire)

    def to_record(self, position) -> dict:
        """The wire record (without wall-clock fields): stable key order."""
        return {
            "alert_id": self.alert_id,
            "status": self.status,
            "model": self.model,
            "feature": self.feature,
            "segment": self.segment,
            "incident_id": self.incident_id,
            "kind": self.kind,
            "detector": self.detector,
            "severity": self.severity,
            "score": round(float(self.score), 6),
            "threshold": round(float(self.threshold), 6),
            "event_time": rfc3339(self.event_time),
            "position": position,
            "event_id": self.event_id,
            "message": self.message,
            **({"incident": self.incident} if self.incident is not None else {}),
        }


Value = Union[float, str, bool, None]


class Violation(msgspec.Struct, frozen=True):
    """One rule an event violated: the rule's label, the field it checks (None for an expression), why."""

    rule: str
    field: Union[str, None]
    message: str


class Decision(msgspec.Struct, omit_defaults=True):
    """The guard's decision for one event (the guarded-outputs record).

    ``prediction`` is the prediction to use (None when blocked),
    ``original_prediction`` the one the model gave, ``violations`` every rule
    the event violated, and ``fixed`` the feature values a ``fix`` rule
    replaced (absent when none). ``msgspec.json.encode(decision)`` is the wire
    record; ``to_dict()`` the same as plain Python values.

    >>> d = Decision("e1", "fraud", "fix", 1.0, 1.4, [Violation("range:prediction", "prediction", "out of range")])
    >>> msgspec.json.encode(d)
    b'{"event_id":"e1","model":"fraud","action":"fix","prediction":1.0,"original_prediction":1.4,"violations":[{"rule":"range:prediction","field":"prediction","message":"out of range"}]}'
    """  # noqa: E501 (the doctest's expected output is one long line)

    event_id: str
    model: str
    action: str
    prediction: Union[Value, dict[str, Value]]
    original_prediction: Union[Value, dict[str, Value]]
    violations: list[Violation]
    fixed: Union[dict[str, Value], None] = None

    def to_dict(self) -> dict:
        return msgspec.to_builtins(self)
