"""Any partitioning, same answer: the live worker's two stages on an events topic of several partitions.

Detection state is per model, but Kafka spreads a model's events over
partitions however the producer keyed them (by request id, round-robin).
The worker therefore runs two stages, each with Kafka's group protocol and
its state in Redis:

1. **route** (the events topic, group ``<app-id>``): each partition's batch
   is read for each event's ``model`` and event time only; the event goes,
   as it is, to the internal topic ``<app-id>-by-model`` keyed by model
   (one model, one internal partition), with its source partition, offset
   and *key*: its place in event time (:func:`.event_time.event_keys`). After each batch, a :class:`Mark` to every
   internal partition says how far the source partition has read, so a
   model's stage knows that nothing older will come from it. A partition
   with nothing new for ``idle_seconds`` says so (an idle mark) and stops
   holding the others back until it sends again.
2. **detect** (the internal topic, group ``<app-id>-by-model``): per
   internal partition, an :class:`~.event_time.EventTimeMerger` over the
   source partitions releases the events in event-time order (the order a
   topic replay gives), and the pipeline monitors them exactly as a file
   replay would. Alerts and dead letters name the event's source
   partition and offset.

Exactly once: the route stage saves its next offset and latest key after
its records are acknowledged (a crash re-sends some: the merger drops each
source's offsets it has seen); the detect stage saves the pipeline, the
merger's marks and its consumed offset in one compare-and-set, and restarts
from the first internal offset of an event it still holds (not saved: read
again). An event with no readable ``model`` goes to the partition of the
empty key, where the pipeline dead-letters it with the reason.

>>> records, marks = route_batch(PartitionState(), 3, [7, 8], [b'{"model":"a","timestamp":5}', b"oops"], 256, 2)
>>> [(key, decode_record(value).offset) for key, value in records]  # no model: the empty key
[(b'a', 7), (b'', 8)]
>>> [(q, decode_record(m)) for q, m in marks]
[(0, Mark(source=3, next_offset=9, key=5.0, idle=False)), (1, Mark(source=3, next_offset=9, key=5.0, idle=False))]
"""

from __future__ import annotations

from typing import Union

import msgspec
import numpy as np

from .decode import models_and_times
from .event_time import EventTimeMerger, event_keys
from .state_store import PartitionState

__all__ = ["Routed", "Mark", "route_batch", "marks_of", "decode_record", "Released", "merge_batch", "by_model_topic"]


class Routed(msgspec.Struct, array_like=True, tag=0):
    """An event on its way to its model's stage: where it was read, its event-time key, its bytes as read."""

    source: int
    offset: int
    key: float
    raw: bytes


class Mark(msgspec.Struct, array_like=True, tag=1):
    """A source partition has read up to ``next_offset`` (as far as event time ``key``); ``idle``: and waits."""

    source: int
    next_offset: int
    key: float
    idle: bool = False


_ENCODE = msgspec.msgpack.Encoder()
_DECODE = msgspec.msgpack.Decoder(Union[Routed, Mark])


def by_model_topic(app_id: str) -> str:
    return f"{app_id}-by-model"


def decode_record(value: bytes) -> Routed | Mark:
    return _DECODE.decode(value)


def route_batch(state: PartitionState, source: int, offsets: list[int], values: list[bytes], max_name_bytes: int,
                partitions: int) -> tuple[list[tuple[bytes, bytes]], list[tuple[int, bytes]]]:
    """(records keyed by model, (internal partition, mark) for each); ``state`` moves past the batch.

    A model name that is not a string, or longer than ``max_name_bytes``,
    goes under the empty key: the detect stage dead-letters it, with why.
    """
    models, times = models_and_times(values)
    keys, recent = event_keys(times, state.latest, tuple(state.recent))
    state.recent = list(recent)
    records = []
    for offset, model, key, raw in zip(offsets, models, keys.tolist(), values):
        name = model.encode() if isinstance(model, str) else b""
        records.append((name if len(name) <= max_name_bytes else b"", _ENCODE.encode(Routed(source, offset, key, raw))))
    if len(keys):
        state.latest = float(keys[-1])
    state.next_offset = offsets[-1] + 1
    state.events += len(offsets)
    return records, marks_of(state, source, partitions)


def marks_of(state: PartitionState, source: int, partitions: int, idle: bool = False) -> list[tuple[int, bytes]]:
    """A :class:`Mark` of the source partition's progress for each internal partition."""
    mark = _ENCODE.encode(Mark(source, state.next_offset, state.latest, idle))
    return [(q, mark) for q in range(partitions)]


class Released(msgspec.Struct):
    """What the merge lets go, in event-time order: source partitions, their offsets, the events' bytes."""

    sources: np.ndarray
    offsets: np.ndarray
    values: list[bytes]
    unreadable: list[int]  # internal offsets of records that are not ours (not routed events or marks)


def merge_batch(merger: EventTimeMerger, offsets: list[int], values: list[bytes]) -> Released:
    """Feed one internal partition's records to ``merger``; return what it releases.

    Events of one source are pushed in runs (a source's offsets only go up:
    a record sent again after a crash is dropped); a mark first pushes its
    source's run, then advances it. Each held value is (internal offset, raw
    bytes), so that :func:`resume_offset` can say where to read again.
    """
    runs: dict[int, tuple[list[int], list[float], list[tuple[int, bytes]]]] = {}
    unreadable: list[int] = []

    def push(source: int) -> None:
        run = runs.pop(source, None)
        if run is not None:
            merger.push(source, run[0], run[1], run[2], keyed=True)

    for at, value in zip(offsets, values):
        try:
            record = _DECODE.decode(value)
        except msgspec.DecodeError:
            unreadable.append(at)
            continue
        if type(record) is Routed:
            run = runs.get(record.source)
            if run is None:
                run = runs[record.source] = ([], [], [])
            if run[0] and record.offset <= run[0][-1]:
                continue  # sent again within this batch
            run[0].append(record.offset)
            run[1].append(record.key)
            run[2].append((at, record.raw))
        else:
            push(record.source)
            merger.advance(record.source, record.next_offset, record.key, record.idle)
    for source in list(runs):
        push(source)
    sources, src_offsets, held = merger.release()
    return Released(sources, src_offsets, [raw for _, raw in held], unreadable)


def resume_offset(merger: EventTimeMerger, next_offset: int) -> int:
    """Where to read the internal partition again after a restart: its first record still held, else ``next``."""
    firsts = [merger.values[s][0][0] for s in merger.sources if merger.values[s]]
    return min(firsts, default=next_offset)
