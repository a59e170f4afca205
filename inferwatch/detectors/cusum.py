"""Block CUSUM: run every lane of a column over a micro-batch of codes.

Blocks are fixed runs of ``block`` events of the model, counted from its
first event. Between blocks a lane carries ``S = min(h, max(0, S + block
sum))``; within a block, the statistic at each event is the per-event CUSUM
restarted from that ``S`` at the block start. It never exceeds the plain
per-event CUSUM, so it keeps Lorden's bound, and it is evaluated at every
event, so a lane fires at the exact event where it crosses its threshold.
Only per-block code counts are needed to advance it: one ``bincount`` and
one small matrix product per column and batch. Blocks are counted from the
model's first event, so the result does not depend on how the stream was
cut into micro-batches.

After a lane crosses, its value is capped at the threshold; a detector's
episode closes at a block end where all of its lanes are at or below
``resolve_fraction`` of their thresholds, once the lane that fired has
stayed quiet (under ``QUIET`` of its threshold) at every block end for as
many events as the firing took to gather its evidence (its run; at least
one block after the firing block). A strong change found in a few events clears
a few events after it ends; a weak one found after thousands of events,
whose evidence wanders near zero while it lasts, stays one episode.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .kernels import block_walk, count_codes, open_block_end
from .lanes import LaneTable

__all__ = ["LaneState", "Transition", "BlockCusum"]

_EPS32 = float(np.finfo(np.float32).eps)
# the share of its threshold a lane that fired must stay under, at every block end, for as long as its run before
# its episode may close: a weak shift's evidence wanders up to the threshold while it lasts and keeps the episode
# open; once it is over the lane stays well under a third of it (at a tenth, the streak of a lane with no change
# at all broke often: an episode of a 0.06 SD shift that had ended stayed open for a million events; at a half,
# a shift of 0.04-0.06 SD that lasts flapped again on some seeds)
QUIET = 0.3


@dataclass
class LaneState:
    """Mutable state of a column's lanes (plain arrays, serialisable)."""

    value: np.ndarray  # S at the last block boundary, in [0, h]
    partial: np.ndarray  # increments summed over the open block so far
    inblock: np.ndarray  # per-event CUSUM within the open block, started from ``value``
    run_start: np.ndarray  # model event index where the current run began (S last 0)
    open: dict[str, bool]  # detector -> episode open
    opened_block: dict[str, int]  # detector -> block index of the firing
    hold: dict[str, int] = field(default_factory=dict)  # detector -> calm block ends its episode needs to close
    calm: dict[str, int] = field(default_factory=dict)  # detector -> calm block ends in a row, so far
    fired: dict[str, int] = field(default_factory=dict)  # detector -> the lane that opened its episode

    @classmethod
    def fresh(cls, lanes: LaneTable, start: int = 0) -> LaneState:
        """Lanes at 0, their runs starting at model event ``start`` (where watching begins: past the warm-up)."""
        n = len(lanes.detectors)
        names = lanes.detector_names()
        return cls(np.zeros(n), np.zeros(n), np.zeros(n), np.full(n, start, dtype=np.int64),
                   dict.fromkeys(names, False), dict.fromkeys(names, -1), dict.fromkeys(names, 1),
                   dict.fromkeys(names, 0), dict.fromkeys(names, -1))

    def to_dict(self) -> dict:
        return {
            "value": self.value.tolist(),
            "partial": self.partial.tolist(),
            "inblock": self.inblock.tolist(),
            "run_start": self.run_start.tolist(),
            "open": dict(self.open),
            "opened_block": dict(self.opened_block),
            "hold": dict(self.hold),
            "calm": dict(self.calm),
            "fired": dict(self.fired),
        }

    @classmethod
    def from_dict(cls, raw: dict) -> LaneState:
        return cls(
            np.asarray(raw["value"], dtype=np.float64),
            np.asarray(raw["partial"], dtype=np.float64),
            np.asarray(raw["inblock"], dtype=np.float64),
            np.asarray(raw["run_start"], dtype=np.int64),
            {k: bool(v) for k, v in raw["open"].items()},
            {k: int(v) for k, v in raw["opened_block"].items()},
            # (a state saved before the hold closed an episode at its first calm block end)
            {k: int(raw.get("hold", {}).get(k, 1)) for k in raw["open"]},
            {k: int(raw.get("calm", {}).get(k, 0)) for k in raw["open"]},
            {k: int(raw.get("fired", {}).get(k, -1)) for k in raw["open"]},
        )


@dataclass(frozen=True)
class Transition:
    """A detector opening (``fire``) or closing (``clear``) an episode at a batch row."""

    detector: str
    action: str
    row: int
    lane: int
    score: float
    threshold: float
    run_length: int


def _streaks(calm: np.ndarray, carried: int) -> np.ndarray:
    """Per block end, how many calm ones in a row end there (``carried``: the streak before the first).

    >>> _streaks(np.array([True, True, False, True]), 2).tolist()
    [3, 4, 0, 1]
    """
    at = np.arange(len(calm))
    last_loud = np.maximum.accumulate(np.where(calm, -1, at))
    return np.where(calm, at - last_loud + np.where(last_loud < 0, carried, 0), 0)


def _lanes_of(detectors: tuple[str, ...], name: str) -> np.ndarray:
    """The lanes of one detector: neighbours, as build_lanes makes them (a slice), or anywhere."""
    first, count = detectors.index(name), detectors.count(name)
    if detectors[first:first + count] == (name,) * count:
        return np.arange(first, first + count)
    return np.flatnonzero(np.asarray(detectors) == name)


class BlockCusum:
    """Advance a column's lanes over batches of codes.

    >>> import numpy as np
    >>> from inferwatch.detectors.lanes import LaneTable
    >>> up = LaneTable(("missing",), np.array([[-0.01], [2.0]]), np.array([10.0]),
    ...                np.array([2.0]), np.array([0.01]), np.array([0.0]), np.array([1]))
    >>> engine, state = BlockCusum(up, block=4), LaneState.fresh(up)
    >>> codes = np.array([0] * 20 + [1] * 8)
    >>> [(t.action, t.row) for t in engine.advance(state, codes, start=0)]
    [('fire', 24)]
    """

    def __init__(self, lanes: LaneTable, block: int = 32, resolve_fraction: float = 0.5) -> None:
        if block < 1:
            raise ValueError(f"block must be >= 1, got {block}")
        if not 0.0 <= resolve_fraction < 1.0:
            raise ValueError(f"resolve_fraction must be in [0, 1), got {resolve_fraction}")
        self.lanes = lanes
        self.block = block
        self.resolve_fraction = resolve_fraction
        self.table = lanes.table
        # Block sums in single precision (twice the speed of double in the product). The carried
        # values are these sums' CUSUM; a crossing is still found on the exact double-precision
        # path, and ``slack`` bounds the rounding (K products of at most ``block`` times the
        # largest increment, each rounded) so the single-precision screen never misses one.
        K, L = lanes.table.shape
        self.table_and_positive = np.empty((K, 2 * L), dtype=np.float32)
        self.table_and_positive[:, :L] = lanes.table
        np.maximum(self.table_and_positive[:, :L], 0.0, out=self.table_and_positive[:, L:])
        largest = self.table_and_positive[:, L:].max(axis=0, initial=0.0).astype(np.float64)
        self.slack = (K + 2) * _EPS32 * block * largest
        self.h = lanes.thresholds
        self.n_codes = K
        self.members = {name: _lanes_of(lanes.detectors, name) for name in sorted(set(lanes.detectors))}

    def advance(
        self, state: LaneState, codes: np.ndarray, start: int, counts: np.ndarray | None = None
    ) -> list[Transition]:
        """Feed ``codes`` (events ``start .. start+len-1`` of the model); mutate ``state``.

        ``counts`` are the per-block code counts (blocks of this batch, the
        first one possibly begun earlier), if the caller already has them.
        """
        n = len(codes)
        if n == 0:
            return []
        B, K, L = self.block, self.n_codes, len(self.h)
        r = start % B
        if counts is None:
            counts = count_codes(codes, r, B, K)
        both = np.asarray(counts, dtype=np.float32) @ self.table_and_positive
        closed = (r + n) // B
        after, last_zero, hot = block_walk(both, state.value, state.inblock, r > 0, self.h, closed,
                                           state.partial, self.slack)
        out: list[Transition] = []
        if hot or any(state.open.values()):
            before = np.vstack([state.value[None, :], after])[: len(both)]
            bound = before + both[:, L:] + self.slack
            if r:  # the first block began in an earlier batch: continue its per-event CUSUM
                bound[0] += state.inblock - state.value
            out = self._transitions(state, codes, before, after, bound, closed, r, start)
        open_sum = both[-1, :L].astype(np.float64)  # the last block's sum, if it stays open
        if len(both) == 1:
            open_sum += state.partial
        self._finish(state, codes, len(both), open_sum, after, last_zero, closed, r, start)
        return out

    def _block_start(self, state: LaneState, before: np.ndarray, j: int, r: int) -> np.ndarray:
        """Per-event CUSUM value at the first row of block ``j`` of this batch."""
        return state.inblock if (j == 0 and r) else before[j]

    def _inblock_path(self, state, codes, before, j, r, lanes) -> tuple[np.ndarray, int]:
        """Per-event CUSUM of ``lanes`` over this batch's rows of block ``j``, and the first row."""
        B = self.block
        lo, hi = max(0, j * B - r), min(len(codes), (j + 1) * B - r)
        path = self._block_start(state, before, j, r)[lanes] + np.cumsum(self.table[codes[lo:hi]][:, lanes], axis=0)
        path -= np.minimum.accumulate(np.minimum(path, 0.0), axis=0)
        return path, lo

    def _transitions(self, state, codes, before, after, bound, closed, r, start) -> list[Transition]:
        """Per detector: exact firing rows, then episode ends at block boundaries."""
        B, n, h = self.block, len(codes), self.h
        first_block = (start - r) // B
        out: list[Transition] = []
        for name, lanes in self.members.items():
            j = 0
            while j < len(before):
                if not state.open[name]:
                    hot = np.flatnonzero((bound[j:, lanes] >= h[lanes]).any(axis=1))
                    if hot.size == 0:
                        break
                    j += int(hot[0])
                    fired = self._exact_crossing(state, codes, lanes, before, after[:j], j, r, start)
                    if fired is not None:
                        out.append(fired)
                        state.open[name] = True
                        state.opened_block[name] = first_block + j
                        state.hold[name], state.calm[name] = max(1, -(-fired.run_length // B)), 0
                        state.fired[name] = fired.lane
                    j += 1
                else:
                    begin = max(j, state.opened_block[name] - first_block + 1, 0)
                    if begin >= closed:
                        break
                    calm = after[begin:closed, lanes] <= self.resolve_fraction * h[lanes]
                    lane = state.fired.get(name, -1)  # (-1: a state saved before: every lane)
                    quiet = max(QUIET, self.resolve_fraction) * h[lane]
                    mine = after[begin:closed, lane] <= quiet if lane in lanes else calm.all(axis=1)
                    streak = _streaks(mine, state.calm.get(name, 0))
                    done = np.flatnonzero((streak >= state.hold.get(name, 1)) & calm.all(axis=1))
                    if done.size == 0:
                        state.calm[name] = int(streak[-1])
                        break
                    j = begin + int(done[0])
                    ratio = after[j, lanes] / h[lanes]
                    lane = int(lanes[np.argmax(ratio)])
                    row = min(n, (j + 1) * B - r) - 1
                    out.append(Transition(name, "clear", row, lane, float(after[j, lane]), float(h[lane]), 0))
                    state.open[name], state.calm[name] = False, 0
                    j += 1
        out.sort(key=lambda t: (t.row, t.detector))
        return out

    def _exact_crossing(self, state, codes, lanes, before, earlier, j, r, start) -> Transition | None:
        """First event of block ``j`` where one of ``lanes`` reaches its threshold.

        ``earlier`` holds the lane values at the ends of this batch's blocks
        before ``j``, to date the run that led to the crossing.
        """
        path, lo = self._inblock_path(state, codes, before, j, r, lanes)
        crossed = path >= self.h[lanes]
        if not crossed.any():
            return None
        first = np.where(crossed.any(axis=0), np.argmax(crossed, axis=0), len(path))
        k = int(np.argmin(first))
        lane = int(lanes[k])
        row = lo + int(first[k])
        zeros = np.flatnonzero(earlier[:, lane] <= 0.0)
        run_start = start - r + (int(zeros[-1]) + 1) * self.block if zeros.size else int(state.run_start[lane])
        run = int(start + row - run_start + 1)
        return Transition(self.lanes.detectors[lane], "fire", row, lane, float(path[first[k], k]),
                          float(self.h[lane]), run)

    def _finish(self, state, codes, n_blocks, open_sum, after, last_zero, closed, r, start) -> None:
        """Carry block values, the open block's partial sum and per-event CUSUM, run starts."""
        B = self.block
        if closed < n_blocks:  # the last block stays open: follow its per-event CUSUM
            j = n_blocks - 1
            begin = state.inblock if (j == 0 and r) else (after[j - 1] if j else state.value)
            state.inblock = open_block_end(self.table, codes[max(0, j * B - r):], begin)
            state.partial = open_sum
        else:
            state.partial = np.zeros_like(state.partial)
        if closed:
            state.value = after[-1].copy()
            state.run_start = np.where(last_zero >= 0, start - r + (last_zero + 1) * B, state.run_start)
            if closed == n_blocks:
                state.inblock = state.value.copy()
