"""A labels topic read beside an events topic of one partition, by whichever worker owns that partition.

With one events partition there is nothing to route: the worker that owns
it reads the events directly, and a second consumer of this module reads
every partition of the labels topic next to it (assigned by hand, not by a
group: it follows the events partition when that moves). The labels' next
offsets are kept in the events partition's state (``labels_next``) and saved
in the same compare-and-set as the pipeline and its label join, so a label
is applied once, after a crash or a move too; labels read while no event
comes are saved with the next batch of events (read again after a crash).

Each fetch of events asks for at least as many labels (while the labels
topic has more, waiting up to ``LABELS_WAIT``): a prediction's label comes
no earlier than the prediction, so the labels read then reach the events'
clock and every label is joined at the clock's first step past its time, as
in ``replay --labels``. Labels read ahead of the events wait in the join's
feed; a label read after the clock passed its time (labels produced more
densely than events, or a labels topic that lagged) is joined at the next
step.

All calls run in the worker's fetch thread (the only thread that calls
librdkafka's consumers).
"""

from __future__ import annotations

import time

from confluent_kafka import Consumer, KafkaException, TopicPartition

from .labels import LabelFeed

__all__ = ["LabelsBeside", "LABELS_WAIT"]

LABELS_WAIT = 1.0  # seconds one fetch of events waits, at most, for the labels that keep up with it
_SLICE = 0.05  # seconds per consume call while labels are behind
_MOST = 5_000  # records per consume call (see worker.CONSUME_RECORDS)


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

    def take(self, events: int) -> dict[int, tuple[list[int], list[bytes], list[LabelFeed]]]:
        """Labels ready now, at least ``events`` of them while the topic has more (at most ``LABELS_WAIT``):
        (offsets, values, [the values read as labels]) per labels partition. (Reading them here, while the
        monitoring thread is in polars or the compiled kernels, takes them off its path.)"""
        if not self.next:
            return {}
        got: dict[int, tuple[list[int], list[bytes]]] = {}
        n, deadline = 0, time.monotonic() + LABELS_WAIT
        while True:
            behind = n < events and not self.at_end()
            messages = self.consumer.consume(num_messages=_MOST, timeout=_SLICE if behind else 0)
            if messages:
                n += self._keep(messages, got)
            if not behind and (not messages or n >= events) or time.monotonic() >= deadline:
                return {k: (offsets, values, [LabelFeed.from_lines(values)]) for k, (offsets, values) in got.items()}

    def _keep(self, messages: list, got: dict) -> int:
        """Add the records among ``messages`` to ``got`` (transient errors are librdkafka's to retry)."""
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
        for k, (run_offsets, run_values) in runs.items():
            have = got.setdefault(k, ([], []))
            have[0].extend(run_offsets)
            have[1].extend(run_values)
            self.next[k] = run_offsets[-1] + 1
        return len(messages)

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
