"""Predictions waiting for their labels: event id -> slot in columns, oldest first.

A pending prediction is its event time, its place (the line or Kafka offset
its alerts name) and its values (each output's, then each segment tag's).
They are kept as columns, one slot a prediction, and a dict of event id to
slot: waiting for 20,000 predictions is one ``dict.update`` of ints and a few
array copies, not 20,000 tuples. When the columns are full, the slots of
predictions no longer waiting are reclaimed if they outnumber the waiting
ones; else the columns double.

>>> import numpy as np
>>> waiting = Pending(1)
>>> waiting.add(["a", "b"], np.array([1.0, 2.0]), np.array([0, 1]), [np.array([0.9, 0.1])])
0
>>> rows, waited = waiting.take(["b", "zz"])
>>> rows.ids, rows.times.tolist(), rows.values[0].tolist(), waited.tolist(), len(waiting)
(['b'], [2.0], [0.1], [True, False], 1)
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Pending", "Rows", "objects"]

GROWTH = 1024  # least slots added when the columns are full


def objects(values) -> np.ndarray:
    """A 1-D object array of ``values`` (each item kept as it is, even a list)."""
    values = values if isinstance(values, list) else list(values)
    return np.fromiter(values, dtype=object, count=len(values))


@dataclass
class Rows:
    """Some pending predictions, taken out: ids, times, places and value columns, in one order."""

    ids: list[str]
    times: np.ndarray
    places: np.ndarray
    values: list[np.ndarray]

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, keep: np.ndarray) -> Rows:
        """The rows where ``keep`` (booleans, one a row) is true."""
        return Rows(list(itertools.compress(self.ids, keep.tolist())), self.times[keep], self.places[keep],
                    [column[keep] for column in self.values])

    def take(self, order: np.ndarray) -> Rows:
        """The rows at ``order`` (positions), in that order."""
        return Rows([self.ids[i] for i in order.tolist()], self.times[order], self.places[order],
                    [column[order] for column in self.values])

    def slice(self, start: int, stop: int | None = None) -> Rows:
        return Rows(self.ids[start:stop], self.times[start:stop], self.places[start:stop],
                    [column[start:stop] for column in self.values])

    @classmethod
    def concat(cls, parts: list[Rows]) -> Rows:
        if len(parts) == 1:
            return parts[0]
        return cls([k for p in parts for k in p.ids], np.concatenate([p.times for p in parts]),
                   np.concatenate([p.places for p in parts]),
                   [np.concatenate([p.values[k] for p in parts]) for k in range(len(parts[0].values))])


class Pending:
    """Pending predictions of one model, with ``width`` value columns (see the module)."""

    def __init__(self, width: int) -> None:
        self.width = width
        self.slot: dict[str, int] = {}  # event id -> slot, in the order the ids first waited
        self.times = np.empty(0)
        self.places = np.empty(0, dtype=np.int64)
        self.values: list[np.ndarray] = [np.empty(0, dtype=object) for _ in range(width)]
        self.used = 0  # slots handed out (waiting or no longer)

    def __len__(self) -> int:
        return len(self.slot)

    def add(self, ids: list[str], times: np.ndarray, places: np.ndarray, values: list[Any]) -> int:
        """These predictions wait (a prediction whose id already waits replaces it, in its place); returns how
        many replaced one."""
        n = len(ids)
        self._reserve(n)
        start, stop = self.used, self.used + n
        self.times[start:stop] = times
        self.places[start:stop] = places
        for column, given in zip(self.values, values):
            column[start:stop] = given
        self.used = stop
        before = len(self.slot)
        self.slot.update(zip(ids, range(start, stop)))
        return before + n - len(self.slot)

    def take(self, ids: list[str]) -> tuple[Rows, np.ndarray | None]:
        """The predictions of ``ids`` that wait, no longer waiting, in the order of ``ids``; and which of ``ids``
        waited (None: all of them)."""
        found = list(map(self.slot.pop, ids, itertools.repeat(-1, len(ids))))
        slots = np.fromiter(found, dtype=np.int64, count=len(found))
        if -1 not in found:
            return self._rows(ids, slots), None
        waited = slots >= 0
        return self._rows(list(itertools.compress(ids, waited.tolist())), slots[waited]), waited

    def oldest(self, count: int) -> Rows:
        """The ``count`` predictions that waited first, no longer waiting."""
        ids = list(itertools.islice(self.slot, count))
        return self._rows(ids, np.fromiter(map(self.slot.pop, ids), dtype=np.int64, count=len(ids)))

    def waited_past(self, clock: float, horizon: float) -> Rows:
        """The predictions at the head of the wait (oldest first) that by ``clock`` waited more than ``horizon``,
        no longer waiting (a prediction that came again waits in its first place: it holds back the ones behind
        it)."""
        times, count = self.times, 0
        for s in self.slot.values():
            if clock - times[s] <= horizon:
                break
            count += 1
        return self.oldest(count)

    def _rows(self, ids: list[str], slots: np.ndarray) -> Rows:
        return Rows(ids, self.times[slots], self.places[slots], [column[slots] for column in self.values])

    def _reserve(self, n: int) -> None:
        if self.used + n <= len(self.times):
            return
        if self.used - len(self.slot) > len(self.slot):  # more freed slots than waiting ones: reclaim first
            self._compact()
            if self.used + n <= len(self.times):
                return
        size = max(2 * len(self.times), self.used + n, GROWTH)
        self.times = _grown(self.times, size, self.used)
        self.places = _grown(self.places, size, self.used)
        self.values = [_grown(column, size, self.used) for column in self.values]

    def _compact(self) -> None:
        """The waiting predictions moved to the first slots, in their order."""
        slots = np.fromiter(self.slot.values(), dtype=np.int64, count=len(self.slot))
        n = len(slots)
        self.times[:n] = self.times[slots]
        self.places[:n] = self.places[slots]
        for column in self.values:
            column[:n] = column[slots]
            column[n:self.used] = None
        self.slot = dict(zip(self.slot, range(n)))
        self.used = n

    def to_dict(self) -> dict:
        slots = np.fromiter(self.slot.values(), dtype=np.int64, count=len(self.slot))
        return {"ids": list(self.slot), "times": self.times[slots].astype("<f8").tobytes(),
                "places": self.places[slots].astype("<i8").tobytes(),
                "values": [column[slots].tolist() for column in self.values]}

    @classmethod
    def from_dict(cls, raw: dict, width: int) -> Pending:
        ids = list(raw["ids"])
        times = np.frombuffer(raw["times"], dtype="<f8").astype(np.float64)
        places = np.frombuffer(raw["places"], dtype="<i8").astype(np.int64)
        values = [objects(v) for v in raw["values"]]
        if len(values) != width or any(len(x) != len(ids) for x in (times, places, *values)):
            raise ValueError("the pending predictions' columns differ in shape")
        pending = cls(width)
        pending.add(ids, times, places, values)
        return pending

    @classmethod
    def from_entries(cls, entries: dict, width: int) -> Pending:
        """From the state of inferwatch 0.2's first labels (event id -> (time, place, *values))."""
        pending = cls(width)
        rows = list(entries.values())
        pending.add(list(entries), np.array([e[0] for e in rows], dtype=np.float64),
                    np.array([e[1] for e in rows], dtype=np.int64),
                    [objects(e[2 + k] for e in rows) for k in range(width)])
        return pending


def _grown(column: np.ndarray, size: int, used: int) -> np.ndarray:
    bigger = np.empty(size, dtype=column.dtype)
    bigger[:used] = column[:used]
    return bigger
