"""Event-time merge of several sources (Kafka partitions): one order, whatever the arrival.

A message's place is its source's latest event time so far (its *key*,
:func:`event_keys`: a message with no readable time, or one older than its
source's latest, keeps its place within its source, so Kafka's order within
a partition is kept; a lone time far ahead does not move it), ties broken by
source, then offset. A message is released once every source
still open has read past its key (the *watermark*, the least of the open
sources' latest keys): keys strictly below it are in their final order, so
the order never depends on how the sources' messages were cut into chunks,
nor on which source's chunk came first. A source that will send nothing more
(its end, in a replay; an idle source, in a live run) is closed and no
longer holds the others back; if it sends again, it is open again, and a
message of it older than what was released meanwhile is late: it takes the
place of the last release, not its own, and is counted in ``late`` when it is
released (once, however often it is read again).

The merger keeps, per source, the last offset it released: a chunk read again
(after a restart) releases nothing twice. Its state is plain data
(:meth:`EventTimeMerger.to_dict`), for a store that is not this process, or
without the held messages (:meth:`EventTimeMerger.resume`), for a caller
that can read them again.

>>> m = EventTimeMerger([0, 1])
>>> m.push(0, [0, 1], [1.0, 5.0], [b"a", b"b"])
>>> m.push(1, [0, 1], [2.0, 3.0], [b"c", b"d"])
>>> m.release()[2]  # below source 1's latest (3.0): source 0 may still send a time under 5.0
[b'a', b'c']
>>> m.close(1)  # source 1 is done: the watermark is source 0's latest (5.0); a tie waits
>>> m.release()[2]
[b'd']
>>> m.close(0)
>>> m.release()[2]
[b'b']
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

__all__ = ["EventTimeMerger", "event_keys"]


JUMP_SECONDS = 300.0  # a time this far past its source's place moves it only when the next readable time agrees


def event_keys(times, latest: float = -np.inf, recent: tuple[float, ...] = ()) -> tuple[np.ndarray, tuple[float, ...]]:
    """Each message's place in its source, and the source's last readable time (to carry on with).

    The place is the running maximum of the readable times, except that a
    time more than ``JUMP_SECONDS`` past the place moves it only when the
    readable time before it was past the place too (then to the lesser of
    the two): a lone timestamp far ahead of its neighbours (a clock gone
    wrong, a unit slip) does not hold its source's later messages back, a
    source that really moved on (two such times in a row) moves. A message
    with no readable time (NaN) keeps the place of the one before.
    ``latest`` and ``recent`` carry the source's state from the call before.

    >>> keys, recent = event_keys([1.0, 2.0, 9000.0, 3.0, float("nan"), 4.0])
    >>> keys.tolist(), recent
    ([1.0, 2.0, 2.0, 3.0, 3.0, 4.0], (4.0,))
    >>> event_keys([1.0, 9000.0, 9001.0, 9002.0])[0].tolist()
    [1.0, 1.0, 9000.0, 9002.0]
    """
    t = np.asarray(times, dtype=np.float64)
    readable = ~np.isnan(t)
    if not readable.any():
        return np.full(len(t), latest), recent
    filled = np.where(readable, t, -np.inf)
    running = np.maximum.accumulate(np.concatenate([[latest], filled]))
    placed = running[:-1]
    if not np.any((filled > placed + JUMP_SECONDS) & (placed > -np.inf)):  # the usual stream: the running maximum
        return running[1:], (float(t[readable][-1]),)
    keys = np.empty(len(t))
    key, before = latest, (recent[-1] if recent else None)
    for i, x in enumerate(t.tolist()):
        if x == x:  # readable
            if x <= key + JUMP_SECONDS or key == -np.inf:  # a first time sets the place
                key = max(key, x)
            elif before is not None and before > key + JUMP_SECONDS:
                key = max(key, min(x, before))
            before = x
        keys[i] = key
    return keys, ((before,) if before is not None else ())


class EventTimeMerger:
    """Buffers of open sources, released in event time below their watermark (see the module's text)."""

    def __init__(self, sources: Iterable[int]) -> None:
        self.keys: dict[int, np.ndarray] = {}
        self.offsets: dict[int, np.ndarray] = {}
        self.values: dict[int, list[bytes]] = {}
        self.latest: dict[int, float] = {}  # a source's latest key: what it has read up to
        self.released: dict[int, int] = {}  # a source's last offset released (or pushed past): a re-read is dropped
        self.closed: set[int] = set()
        self.next: dict[int, int] = {}  # a source's offset after the last message or word seen: older words are dropped
        self.recent: dict[int, tuple[float, ...]] = {}  # a source's last two readable times (see event_keys)
        self.released_key = -np.inf  # the greatest key released so far: no message is placed before it
        self.own: dict[int, float] = {}  # a source's place by its own times (``latest`` without the late lift)
        self.own_keys: dict[int, np.ndarray] = {}  # per held message: its place by its source's own times
        self.late = 0  # messages released after a message placed later than them (see the module's text)
        for s in sources:
            self._open(int(s))

    def open(self, source: int) -> None:
        """Take one more source (a no-op for one it has): it holds the merge back until it says how far it read."""
        if int(source) not in self.keys:
            self._open(int(source))

    def _open(self, s: int) -> None:
        self.keys[s] = np.empty(0)
        self.offsets[s] = np.empty(0, dtype=np.int64)
        self.values[s] = []
        self.own_keys[s] = np.empty(0)
        self.latest.setdefault(s, -np.inf)
        self.own.setdefault(s, self.latest[s])
        self.released.setdefault(s, -1)
        self.next.setdefault(s, 0)

    @property
    def sources(self) -> list[int]:
        return sorted(self.keys)

    def push(self, source: int, offsets: Sequence[int] | np.ndarray, times: Sequence[float] | np.ndarray,
             values: list, keyed: bool = False) -> None:
        """Messages of one source, in offset order; ``times`` in epoch seconds, NaN when unreadable
        (``keyed``: their places, as :func:`event_keys` gave them where they were read).

        Offsets at or below what the source already gave are dropped (a chunk read again); a closed
        source opens again.
        """
        s = int(source)
        offs = np.asarray(offsets, dtype=np.int64)
        last = int(self.offsets[s][-1]) if len(self.offsets.get(s, ())) else self.released.get(s, -1)
        fresh = offs > last
        if not fresh.all():
            keep = np.flatnonzero(fresh)
            offs, times = offs[keep], np.asarray(times, dtype=np.float64)[keep]
            values = [values[i] for i in keep.tolist()]
        if not len(offs):  # nothing new: a closed source stays closed
            return
        if s not in self.keys:
            self._open(s)
        self.closed.discard(s)
        if keyed:
            t = np.nan_to_num(np.asarray(times, dtype=np.float64), nan=-np.inf)
        else:
            t, self.recent[s] = event_keys(times, self.own[s], self.recent.get(s, ()))
        own = np.maximum.accumulate(np.concatenate([[self.own[s]], t]))[1:]
        # a source that comes back after the others moved on is late: its messages take the release point
        keys = np.maximum(own, max(self.latest[s], self.released_key))
        self.own[s] = float(own[-1])
        self.own_keys[s] = np.concatenate([self.own_keys[s], own])
        self.keys[s] = np.concatenate([self.keys[s], keys])
        self.offsets[s] = np.concatenate([self.offsets[s], offs])
        self.values[s] = self.values[s] + list(values)
        self.latest[s] = float(keys[-1])
        self.next[s] = max(self.next.get(s, 0), int(offs[-1]) + 1)

    def advance(self, source: int, next_offset: int, key: float, idle: bool = False) -> None:
        """A source's word: it has read up to ``next_offset``, as far as event time ``key``, and everything
        of it below that offset meant for this merger was pushed. ``idle``: it has nothing more for now, and is
        closed until it sends again; otherwise it is open. A word older than what the source gave is dropped.

        >>> m = EventTimeMerger([0, 1])
        >>> m.push(0, [0, 1], [4.0, 7.0], [b"a", b"b"])
        >>> m.advance(1, 40, 6.0)  # source 1 read as far as 6.0 (its events went elsewhere)
        >>> m.release()[2]
        [b'a']
        """
        s = int(source)
        if s not in self.keys:
            self._open(s)
        if next_offset < self.next.get(s, 0):
            return
        self.next[s] = int(next_offset)
        if idle:
            self.closed.add(s)
        else:
            self.closed.discard(s)
        if key == key:  # not NaN
            self.latest[s] = max(self.latest[s], float(key))
            self.own[s] = max(self.own[s], float(key))

    def close(self, source: int) -> None:
        """The source sends nothing more (for now): it no longer holds the watermark back."""
        self.closed.add(int(source))

    def watermark(self) -> float:
        """The least latest key of the open sources (+inf when every source is closed)."""
        return min((self.latest[s] for s in self.keys if s not in self.closed), default=np.inf)

    def holding(self) -> list[int]:
        """Open sources whose latest key is the watermark: the ones to read from before more can go."""
        mark = self.watermark()
        return [s for s in self.sources if s not in self.closed and self.latest[s] == mark]

    def pending(self) -> int:
        return sum(len(k) for k in self.keys.values())

    def release(self) -> tuple[np.ndarray, np.ndarray, list[bytes]]:
        """(sources, offsets, values) of every held message whose key is below the watermark, in order."""
        mark = self.watermark()
        order_of = self.sources
        cut = {s: int(np.searchsorted(self.keys[s], mark, side="left")) for s in order_of}
        if not any(cut.values()):
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64), []
        key = np.concatenate([self.keys[s][:cut[s]] for s in order_of])
        source = np.concatenate([np.full(cut[s], s, dtype=np.int64) for s in order_of])
        offset = np.concatenate([self.offsets[s][:cut[s]] for s in order_of])
        taken = [v for s in order_of for v in self.values[s][:cut[s]]]
        for s in order_of:
            k = cut[s]
            if k:
                self.released[s] = int(self.offsets[s][k - 1])
                self.late += int(np.count_nonzero(self.own_keys[s][:k] < self.released_key))
                self.keys[s], self.offsets[s] = self.keys[s][k:], self.offsets[s][k:]
                self.own_keys[s] = self.own_keys[s][k:]
                self.values[s] = self.values[s][k:]
        order = np.lexsort((offset, source, key))
        self.released_key = max(self.released_key, float(key[order[-1]]))
        return source[order], offset[order], [taken[i] for i in order.tolist()]

    def to_dict(self) -> dict:
        """Plain data (numbers, bytes, lists): what :meth:`from_dict` takes back."""
        return {"released_key": self.released_key, "late": self.late,
                "sources": {str(s): {"keys": self.keys[s].astype("<f8").tobytes(),
                                     "offsets": self.offsets[s].astype("<i8").tobytes(),
                                     "own_keys": self.own_keys[s].astype("<f8").tobytes(), "own": self.own[s],
                                     "values": list(self.values[s]), "latest": self.latest[s],
                                     "released": self.released[s], "closed": s in self.closed,
                                     "recent": list(self.recent.get(s, ()))}
                            for s in self.sources}}

    def resume(self) -> dict:
        """:meth:`to_dict` without the held messages, which the caller reads again from its input (the merger
        drops what it released before): a source holding messages goes back to just before the first.

        >>> m = EventTimeMerger([0, 1])
        >>> m.push(0, [0, 1], [1.0, 5.0], [b"a", b"b"])
        >>> m.push(1, [0], [3.0], [b"c"])
        >>> m.release()[2]
        [b'a']
        >>> again = EventTimeMerger.from_dict(m.resume())
        >>> again.push(0, [0, 1], [1.0, 5.0], [b"a", b"b"])  # read again: the first was released already
        >>> again.push(1, [0], [3.0], [b"c"])
        >>> again.close(0), again.close(1), again.release()[2]
        (None, None, [b'c', b'b'])
        """
        sources = {}
        for s in self.sources:
            held = len(self.keys[s]) > 0
            sources[str(s)] = {"latest": float(self.keys[s][0]) if held else self.latest[s],
                               "own": float(self.own_keys[s][0]) if held else self.own[s],
                               "released": self.released[s], "closed": s in self.closed,
                               "next": int(self.offsets[s][0]) if held else self.next[s]}
        return {"released_key": self.released_key, "late": self.late, "sources": sources}

    @classmethod
    def from_dict(cls, raw: dict) -> EventTimeMerger:
        """The merger :meth:`to_dict` (or :meth:`resume`, without held messages) wrote; ValueError when the
        data cannot be one."""
        m = cls([])
        try:
            m.released_key = float(raw["released_key"])
            m.late = int(raw.get("late", 0))
            for name, part in raw["sources"].items():
                s = int(name)
                keys = np.frombuffer(part.get("keys", b""), dtype="<f8").astype(np.float64)
                offsets = np.frombuffer(part.get("offsets", b""), dtype="<i8").astype(np.int64)
                values = [bytes(v) for v in part.get("values", ())]
                latest, released = float(part["latest"]), int(part["released"])
                if not len(keys) == len(offsets) == len(values):
                    raise ValueError(f"{len(keys)} keys, {len(offsets)} offsets and {len(values)} values")
                if len(keys) and (np.any(keys[1:] < keys[:-1]) or np.any(offsets[1:] <= offsets[:-1])
                                  or keys[-1] > latest or offsets[0] <= released):
                    raise ValueError("keys or offsets out of order")
                own_keys = np.frombuffer(part.get("own_keys", b""), dtype="<f8").astype(np.float64)
                if len(own_keys) != len(keys):
                    own_keys = keys.copy()  # a state written before own places were kept
                m.keys[s], m.offsets[s], m.values[s], m.own_keys[s] = keys, offsets, values, own_keys
                m.latest[s], m.released[s] = latest, released
                m.own[s] = float(part.get("own", latest))
                m.recent[s] = tuple(float(x) for x in part.get("recent", ()))[-2:]
                m.next[s] = int(part.get("next", int(offsets[-1]) + 1 if len(offsets) else released + 1))
                if part["closed"]:
                    m.closed.add(s)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"not an event-time merger's state: {exc}") from None
        return m
