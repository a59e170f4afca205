"""A labels topic read beside an events topic of one partition, by whichever worker owns that partition.

With one events partition there is nothing to route: the worker that owns
it reads the events directly, and a second consumer of this module reads
every partition of the labels topic next to it (assigned by hand, not by a
group: it follows the events partition when that moves). The labels' next
offsets are kept in the events partition's state (``labels_next``) and saved
in the same compare-and-set as the pipeline and its label join, so a label
is applied once, after a crash or a move too; labels read while no event
comes are saved with the partition's state as they are joined.

Each fetch of events asks for as many labels, and for more while the
latest label read is behind the events' time as of the last batch (while
the labels topic has more, waiting up to ``LABELS_WAIT``): a prediction's
label comes no earlier than the prediction, so the labels read then reach
the events' time and every label is joined at the time's first step past
its own, as in ``replay --labels``. Labels read ahead wait in the join's
feed (saved with the state), so the count gives way once they are
``AHEAD`` of the events' last steps (sparse labels, a backlog of them). A
label read after the events' time passed its own (a labels topic that
lagged) is joined at the next step. The end of a labels partition is what
librdkafka reports (``enable.partition.eof``: also past a transactional
producer's commit marks), or its end offset.

All calls run in the worker's fetch thread (the only thread that calls
librdkafka's consumers).
"""

from __future__ import annotations

import math
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from .kafka_reader import by_partition
from .labels import LabelFeed

__all__ = ["LabelsBeside", "LABELS_WAIT"]

LABELS_WAIT = 1.0  # seconds one fetch of events waits, at most, for the labels that keep up with it
_SLICE = 0.05  # seconds per consume call while labels are behind
_MOST = 5_000  # records per consume call, at most (see worker.CONSUME_RECORDS)
_LEAST = 500  # and at least, while labels are read to reach the events' time
AHEAD = 2  # labels read ahead of the events' time by this many of its last steps: enough for now


class LabelsBeside:
    """The labels topic's consumer of a direct stage; ``settings`` are librdkafka's (group id, servers, security)."""

    def __init__(self, topic: str, partitions: int, settings: dict) -> None:
        self.topic, self.partitions = topic, partitions
        self.consumer = Consumer({**settings, "enable.auto.commit": False, "enable.auto.offset.store": False,
                                  "auto.offset.reset": "earliest", "enable.partition.eof": True})
        self.next: dict[int, int] = {}  # labels partition -> the next offset this consumer will give
        self.ends: dict[int, int] = {}  # labels partition -> its end offset, as last known (-1: not known)
        self.eof: dict[int, int] = {}  # labels partition -> where librdkafka said its end was (past transaction marks)
        self.latest = -math.inf  # the latest label time read since the assignment
        self.clock, self.span = -math.inf, 0.0  # the events' time as last given, and its last step

    def assign(self, stored: dict[int, int]) -> None:
        """Read every labels partition from its stored next offset (from its start when none is stored)."""
        placed = []
        self.eof.clear()
        self.latest = -math.inf
        for k in range(self.partitions):
            tp = TopicPartition(self.topic, k)
            try:
                low, high = self.consumer.get_watermark_offsets(tp, timeout=5)
            except KafkaException:  # the broker away: from the stored offset (or the start), the end unknown
                low, high = (stored[k] if k in stored else OFFSET_BEGINNING), -1
            self.next[k] = max(stored.get(k, low), low) if low >= 0 else low
            self.ends[k] = high
            placed.append(TopicPartition(self.topic, k, self.next[k]))
        self.consumer.assign(placed)

    def unassign(self) -> None:
        self.next.clear()
        self.ends.clear()
        self.eof.clear()
        try:
            self.consumer.unassign()
        except KafkaException:
            pass

    def take(self, events: int, clock: float) -> dict[int, tuple[list[int], list[bytes], list[LabelFeed]]]:
        """Labels ready now, while the topic has more (for at most ``LABELS_WAIT``): until the latest label
        read reaches ``clock`` (the events' time as of the last batch), and at least ``events`` of them
        unless those read are already ``AHEAD`` of the events' steps past ``clock``.

        Returns (offsets, values, [the values read as labels]) per labels
        partition. (Reading them here, while the monitoring thread is in
        polars or the compiled kernels, takes them off its path.)
        """
        got: dict[int, tuple[list[int], list[bytes], list[LabelFeed]]] = {}
        if not self.next:
            return got
        if math.isfinite(self.clock) and clock > self.clock:
            self.span = clock - self.clock
        self.clock = max(self.clock, clock)
        n, deadline = 0, time.monotonic() + LABELS_WAIT
        while self._wanted(n, events, clock) and not self.at_end() and time.monotonic() < deadline:
            messages = self.consumer.consume(num_messages=min(_MOST, max(events - n, _LEAST)), timeout=_SLICE)
            if messages:
                n += self._keep(messages, got)
        return got

    def _wanted(self, n: int, events: int, clock: float) -> bool:
        """More labels: the events' time not reached yet, or fewer than the events while not far ahead."""
        if self.latest < clock:
            return True
        far = math.isfinite(clock) and self.span > 0 and self.latest >= clock + AHEAD * self.span
        return n < events and not far

    def _keep(self, messages: list, got: dict) -> int:
        """Add the records among ``messages`` to ``got`` (an end of partition noted; transient errors are
        librdkafka's to retry); how many."""
        runs, failed = by_partition(messages)
        self.eof.update((m.partition(), m.offset()) for m in failed if m.error().code() == KafkaError._PARTITION_EOF)
        for k, (run_offsets, run_values) in runs.items():
            self.eof.pop(k, None)
            feed = LabelFeed.from_lines(run_values)
            if len(feed.times):
                self.latest = max(self.latest, float(feed.times[-1]))
            have = got.setdefault(k, ([], [], []))
            have[0].extend(run_offsets)
            have[1].extend(run_values)
            have[2].append(feed)
            self.next[k] = run_offsets[-1] + 1
        return sum(len(run_offsets) for run_offsets, _ in runs.values())

    def at_end(self) -> bool:
        """Every labels partition read to its end, as far as the last fetch says: the end librdkafka reported,
        if the partition has not grown past it since, else its end offset."""
        for k, nxt in self.next.items():
            try:
                high = self.consumer.get_watermark_offsets(TopicPartition(self.topic, k), cached=True)[1]
            except KafkaException:
                high = -1
            if high >= 0:
                self.ends[k] = high
            end = self.ends.get(k, -1)
            if k in self.eof and end <= self.eof[k]:
                continue
            if end < 0 or nxt < end:  # (an end not known: not at it until librdkafka says so)
                return False
        return True

    def close(self) -> None:
        self.consumer.close()
