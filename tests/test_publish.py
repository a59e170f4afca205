"""The publisher against a real broker: refused records are isolated, shrunk or dropped, never re-sent in bulk."""

from __future__ import annotations

import asyncio

import pytest

from inferwatch.streams.publish import BatchPublisher, ensure_topics
from inferwatch.testing.services import kcat_consume, kcat_consume_partitions, unique

pytestmark = pytest.mark.integration


def halve(topic: str, record: tuple[bytes | None, bytes]) -> tuple[bytes | None, bytes] | None:
    """A stand-in half as long, or none once it is short (a test's dead-letter shrinker)."""
    key, value = record
    return (key, value[: len(value) // 2]) if len(value) > 4_000 else None


def test_records_a_batch_shares_with_a_refused_one_are_delivered_once_in_order(services):
    """A topic taking 10,000 bytes per request: 40 records of 3,000 bytes fit alone but not together, one of
    20,000 bytes fits only once halved, one of 9,000 (alone, under the limit) is fine; the shrinker gives up on
    a record it cannot cut: that one is counted as refused."""
    bootstrap = services["KAFKA_BOOTSTRAP_SERVERS"]
    topic = unique("publish")
    ensure_topics(bootstrap, [topic], 1, {topic: {"max.message.bytes": "10000"}})
    small = [(None, b"%04d" % i + b"s" * 2_996) for i in range(40)]
    big = (None, b"B" * 20_000)
    records = small[:20] + [big] + small[20:] + [(None, b"m" * 9_000)]

    async def run() -> int:
        publisher = BatchPublisher(bootstrap)
        try:
            return await publisher.deliver([(topic, None, records)], shrink=halve)
        finally:
            await publisher.stop()

    assert asyncio.run(run()) == 0
    got = kcat_consume(bootstrap, topic)
    assert [v for v in got if v.endswith(b"s")] == [v for _, v in small]  # each once, in order
    assert [v for v in got if v.startswith(b"B")] == [b"B" * 5_000]  # halved twice: 20,000 -> 10,000 -> 5,000
    assert got.count(b"m" * 9_000) == 1


def test_a_record_no_stand_in_can_save_is_counted_and_the_rest_go_on(services):
    bootstrap = services["KAFKA_BOOTSTRAP_SERVERS"]
    topic = unique("publish")
    ensure_topics(bootstrap, [topic], 1, {topic: {"max.message.bytes": "10000"}})
    records = [(b"k", b"a" * 100), (b"k", b"x" * 50_000), (b"k", b"b" * 100)]

    async def run() -> int:
        publisher = BatchPublisher(bootstrap)
        try:
            return await publisher.deliver([(topic, None, records)])  # no shrinker
        finally:
            await publisher.stop()

    assert asyncio.run(run()) == 1
    assert kcat_consume(bootstrap, topic) == [b"a" * 100, b"b" * 100]


def test_a_key_goes_to_the_partition_javas_producer_picks(services):
    """murmur2 of the key, as Java's producer and aiokafka place it, so consumers keyed by model keep working."""
    from kafka.partitioner.default import murmur2

    bootstrap = services["KAFKA_BOOTSTRAP_SERVERS"]
    topic = unique("publish")
    ensure_topics(bootstrap, [topic], 4)
    keys = [f"model-{i}".encode() for i in range(24)]

    async def run() -> int:
        publisher = BatchPublisher(bootstrap)
        try:
            return await publisher.deliver([(topic, None, [(k, k) for k in keys])])
        finally:
            await publisher.stop()

    assert asyncio.run(run()) == 0
    placed = {v: p for p, values in kcat_consume_partitions(bootstrap, topic).items() for v in values}
    assert placed == {k: (murmur2(k) & 0x7FFFFFFF) % 4 for k in keys}


def test_a_producer_whose_records_stall_is_replaced_and_they_are_sent_again(monkeypatch):
    """No broker answers (a closed port): the records are never acknowledged nor handed back before their
    timeout. Once they have not moved for ``STALL_SECONDS`` they are purged and sent again by a new producer,
    over and over while the outage lasts, so a producer that lost its broker for good is never waited on for
    ever (a worker once was, after a broker restart)."""
    import socket

    from inferwatch.streams import publish

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once this block ends: nothing listens there
    monkeypatch.setattr(publish, "STALL_SECONDS", 1.0)
    publisher = BatchPublisher(f"127.0.0.1:{port}")
    made = []
    started = publisher._started

    def counted():
        producer = started()
        if not made or made[-1] is not producer:
            made.append(producer)
        return producer

    monkeypatch.setattr(publisher, "_started", counted)

    async def run() -> None:
        task = asyncio.ensure_future(publisher.deliver([("nowhere", None, [(None, b"x")] * 10)]))
        for _ in range(200):
            if len(made) >= 3:
                break
            await asyncio.wait([task], timeout=0.1)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(run())
    assert len(made) >= 3, made
