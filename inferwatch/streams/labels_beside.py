"""A labels topic read beside an events topic of one partition, by whichever worker owns that partition.

With one events partition there is nothing to route: the worker that owns
it reads the events directly, and a second consumer of this module reads
every partition of the labels topic next to it (assigned by hand, not by a
group: it follows the events partition when that moves). The labels' next
offsets are kept in the events partition's state (``labels_next``) and saved
in the same compare-and-set as the pipeline and its label join, so a label
is applied once, after a crash or a move too; labels read while no event
comes are saved with the next batch of events (read again after a crash).

Each fetch of events asks for as many labels, and for more while the
latest label read is behind the events' time as of the last batch (while
the labels topic has more, waiting up to ``LABELS_WAIT``): a prediction's
label comes no earlier than the prediction, so the labels read then reach
the events' time and every label is joined at the time's first step past
its own, as in ``replay --labels``, with about one fetch of labels read
ahead (they wait in the join's feed). A label read after the events' time
passed its own (a labels topic that lagged) is joined at the next step.

All calls run in the worker's fetch thread (the only thread that calls
librdkafka's consumers).
"""

from __future__ import annotations

import math
import time

from confluent_kafka import Consumer, KafkaException, TopicPartition

from .labels import LabelFeed

__all__ = ["LabelsBeside", "LABELS_WAIT"]

LABELS_WAIT = 1.0  # seconds one fetch of events waits, at most, for the labels that keep up with it
_SLICE = 0.05  # seconds per consume call while labels are behind
_MOST = 5_000  # records per consume call, at most (see worker.CONSUME_RECORDS)
_LEAST = 500  # and at least, while labels are read to reach the events' time


class LabelsBeside:
    """The labels topic's consumer of a direct stage; ``settings`` are librdkafka's (group id, servers, security)."""

    def __init__(self, topic: str, partitions: int, settings: dict) -> None:
        self.topic, self.partitions = topic, partitions
        self.consumer = Consumer({**settings, "enable.auto.commit": False, "enable.auto.offset.store": False,
                                  "auto.offset.reset": "earliest"})
        self.next: dict[int, int] = {}  # labels partition -> the next offset this consumer will give
        self.ends: dict[int, int] = {}  # labels partition -> its end offset, as last known

    def assign(self, stored: dict[int, int]) -> None:
        """Read every labels partition from its stored next offset (from its start when none is stored)."""
        placed = []
        for k in range(self.partitions):
            tp = TopicPartition(self.topic, k)
            low, high = self.consumer.get_watermark_offsets(tp, timeout=30)
            self.next[k] = max(stored.get(k, low), low)
            self.ends[k] = high
            placed.append(TopicPartition(self.topic, k, self.next[k]))
        self.consumer.assign(placed)

    def unassign(self) -> None:
        self.next.clear()
        self.ends.clear()
        try:
            self.consumer.unassign()
        except KafkaException:
            pass

    def take(self, events: int, clock: float) -> dict[int, tuple[list[int], list[bytes], list[LabelFeed]]]:
        """Labels ready now: while the topic has more (for at most ``LABELS_WAIT``), at least ``events`` of them
        and until the latest label read reaches ``clock`` (the events' time so far), no more than that.

        Returns (offsets, values, [the values read as labels]) per labels
        partition. (Reading them here, while the monitoring thread is in
        polars or the compiled kernels, takes them off its path.)
        """
        got: dict[int, tuple[list[int], list[bytes], list[LabelFeed]]] = {}
        if not self.next:
            return got
        n, latest, deadline = 0, -math.inf, time.monotonic() + LABELS_WAIT
        while (n < events or latest < clock) and not self.at_end() and time.monotonic() < deadline:
            messages = self.consumer.consume(num_messages=min(_MOST, max(events - n, _LEAST)), timeout=_SLICE)
            if messages:
                read, latest_read = self._keep(messages, got)
                n, latest = n + read, max(latest, latest_read)
        return got

    def _keep(self, messages: list, got: dict) -> tuple[int, float]:
        """Add the records among ``messages`` to ``got`` (transient errors are librdkafka's to retry); how many,
        and the latest label time among them."""
        errors = [m.error() for m in messages]
        if any(e is not None for e in errors):
            fatal = next((e for e in errors if e is not None and e.fatal()), None)
            if fatal is not None:
                raise KafkaException(fatal)
            messages = [m for m, e in zip(messages, errors) if e is None]
        partitions = [m.partition() for m in messages]
        offsets = [m.offset() for m in messages]
        values = [m.value() or b"" for m in messages]
        if len(set(partitions)) == 1:  # the usual: one labels partition in a fetch
            runs = {partitions[0]: (offsets, values)}
        else:
            runs = {}
            for k, offset, value in zip(partitions, offsets, values):
                run = runs.setdefault(k, ([], []))
                run[0].append(offset)
                run[1].append(value)
        latest = -math.inf
        for k, (run_offsets, run_values) in runs.items():
            feed = LabelFeed.from_lines(run_values)
            if len(feed.times):
                latest = max(latest, float(feed.times[-1]))
            have = got.setdefault(k, ([], [], []))
            have[0].extend(run_offsets)
            have[1].extend(run_values)
            have[2].append(feed)
            self.next[k] = run_offsets[-1] + 1
        return len(messages), latest

    def at_end(self) -> bool:
        """Every labels partition read to its end, as far as the last fetch says."""
        for k, nxt in self.next.items():
            try:
                high = self.consumer.get_watermark_offsets(TopicPartition(self.topic, k), cached=True)[1]
            except KafkaException:
                high = -1
            if high >= 0:
                self.ends[k] = high
            if nxt < self.ends.get(k, 0):
                return False
        return True

    def close(self) -> None:
        self.consumer.close()
