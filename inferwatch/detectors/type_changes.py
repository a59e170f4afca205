"""Type changes: a field that arrives with the wrong JSON type is a finding about that field.

The decoder sets such a value to missing (the event still counts, every
other column is still monitored) and tells the monitor which rows of which
column carried what. One ``type_changed`` episode per column opens at the
first such row and closes after ``clear_after`` of the model's events in a
row without one. A wrong value that comes within ``quiet_after`` events
(ten times ``clear_after``) of the column's last opens none: a trickle of ``"unknown"`` in a
numeric column is one episode, not one each time a value comes after a
short quiet spell (such values count as missing, so the missing-value
detector, calibrated on the baseline, watches how often they come); one
that comes back after a long clean stretch is news again, and each time it
does the column's quiet spell doubles: a value that keeps coming back now
and then (a bare ``NaN`` every few thousand events) is how that column is,
and pages a few times, not at each return. Another kind of wrong value (a
string where ``NaN`` came now and then) is news at once. A kind of wrong value
the reference itself holds in a column (``baseline``) is how that column is:
no episode at all (its rate is the missing-value detector's).

>>> import numpy as np
>>> tc = TypeChanges()
>>> [(f.action, f.row) for f in tc.observe({"amount": (np.array([3, 7]), "expected a number, got a string")}, 10, 0)]
[('fire', 3)]
>>> [(f.action, f.row) for f in TypeChanges(clear_after=5).observe({"x": (np.array([1, 2]), "...")}, 10, 0)]
[('fire', 1), ('clear', 7)]
>>> tc.observe({}, 500, 10), [(f.action, f.row) for f in tc.observe({}, 2000, 510)]
([], [('clear', 497)])
>>> tc.observe({"amount": (np.array([4]), "expected a number, got a string")}, 10, 2510)  # that one again, soon
[]
>>> [f.action for f in tc.observe({"amount": (np.array([4]), "expected a number, got a string")}, 10, 20_000)]
['fire']
>>> tc = TypeChanges()
>>> tc.baseline({"ratio": {"expected a number, got NaN"}})
>>> tc.observe({"ratio": (np.array([2]), "expected a number, got NaN")}, 10, 0)
[]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .alerts import Finding

__all__ = ["TypeChanges", "DETECTOR"]

DETECTOR = "type_changed"
CLEAR_AFTER = 1000


class TypeChanges:
    """Open ``type_changed`` episodes per column: the model event of the last wrong value, and how many."""

    def __init__(self, clear_after: int = CLEAR_AFTER, last: dict | None = None,
                 recent: dict[str, int] | None = None, quiet: dict[str, int] | None = None,
                 reasons: dict[str, str] | None = None, known: dict[str, set[str]] | None = None) -> None:
        self.clear_after = clear_after
        self.quiet_after = 10 * clear_after
        self.last: dict[str, list[int]] = last or {}  # column -> [event of the last wrong value, wrong values]
        self.recent: dict[str, int] = recent or {}  # column -> the event of its last wrong value
        self.quiet: dict[str, int] = quiet or {}  # column -> its quiet spell, once it came back after one
        self.reasons: dict[str, str] = reasons or {}  # column -> what its last wrong value was
        self.known: dict[str, set[str]] = known or {}  # column -> the kinds of wrong value its reference held

    def baseline(self, known: dict[str, set[str]] | None) -> None:
        """The kinds of wrong value each column's reference held: none of them opens an episode."""
        self.known = {column: set(why) for column, why in (known or {}).items() if why}

    def observe(self, invalid: Mapping[str, tuple[np.ndarray, str | Sequence[str]]], n: int,
                start: int) -> list[Finding]:
        """Findings of a batch of ``n`` events (the model's events ``start`` ...); ``invalid``: column -> (its
        rows of a wrong value, what each was, or one reason for all).

        The same events give the same findings however they are cut into batches.
        """
        out = []
        news: dict[str, list[tuple[int, str]]] = {}
        for column, (rows, whys) in invalid.items():
            known = self.known.get(column, ())
            each = [whys] * len(rows) if isinstance(whys, str) else whys
            found = [(start + row, why) for row, why in zip(rows.tolist(), each) if why not in known]
            if found:
                news[column] = found
        for column in sorted(set(self.last) | set(news)):
            seen = self.last.get(column)
            for row, why in news.get(column, ()):
                if seen is not None and row - seen[0] > self.clear_after:  # a gap: that episode ended
                    out.append(self._clear(column, seen, start))
                    seen = None
                before, self.recent[column] = self.recent.get(column), row
                if self.reasons.get(column, why) != why:  # another kind of wrong value: news, whatever came before
                    before = None
                    self.quiet.pop(column, None)
                self.reasons[column] = why
                quiet = self.quiet.get(column, self.quiet_after)
                if seen is None and before is not None and row - before <= quiet:  # not news
                    continue
                if seen is None and (before is not None or column in self.quiet):  # back after a quiet spell:
                    self.quiet[column] = 2 * quiet  # the column's spell doubles
                if seen is None:
                    out.append(Finding(column, DETECTOR, "fire", row - start, 1.0, 0.0, "warning",
                                       f"{column}: type changed: {why}; such values count as missing, the events "
                                       f"and their other columns are still monitored", kind="data_quality"))
                    seen = [row, 0]
                seen[0], seen[1] = row, seen[1] + 1
            if seen is not None and seen[0] + self.clear_after < start + n:
                out.append(self._clear(column, seen, start))
                seen = None
            if seen is None:
                self.last.pop(column, None)
            else:
                self.last[column] = seen
            if self.recent.get(column, start + n) + self.quiet.get(column, self.quiet_after) < start + n:
                del self.recent[column]  # quiet long enough: news again (and the state stays small)
                self.quiet.setdefault(column, self.quiet_after)  # (the next return doubles it)
        return sorted(out, key=lambda f: f.row)

    def _clear(self, column: str, seen: list[int], start: int) -> Finding:
        last, count = seen
        return Finding(column, DETECTOR, "clear", last + self.clear_after - start, float(count), 0.0, "info",
                       f"{column}: values of the expected type again for {self.clear_after:,} events "
                       f"({count:,} of the wrong type in the episode)", kind="data_quality")

    def to_dict(self) -> dict:
        return {"clear_after": self.clear_after, "last": self.last, "recent": self.recent, "quiet": self.quiet,
                "reasons": self.reasons, "known": {column: sorted(why) for column, why in self.known.items()}}

    @classmethod
    def from_dict(cls, raw: dict | None) -> TypeChanges:
        raw = raw or {}
        return cls(int(raw.get("clear_after", CLEAR_AFTER)), {k: list(v) for k, v in (raw.get("last") or {}).items()},
                   {k: int(at) for k, at in (raw.get("recent") or {}).items()},
                   {k: int(q) for k, q in (raw.get("quiet") or {}).items()},
                   {k: str(why) for k, why in (raw.get("reasons") or {}).items()},
                   {k: {str(w) for w in why} for k, why in (raw.get("known") or {}).items()})
