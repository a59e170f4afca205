"""Publishing many records fast: aiokafka batches, not one Faust send per record.

Faust's ``topic.send`` costs tens of microseconds a record; a guard or a
worker that emits a decision per event would spend more time sending than
deciding. :class:`BatchPublisher` appends records to aiokafka's
``create_batch``/``send_batch`` per partition (or ``send`` when the
partition comes from the key) and returns the futures of the broker's acks,
which the caller awaits before it lets its input offsets be committed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Callable

__all__ = ["BatchPublisher", "ensure_topics", "Shrink"]

log = logging.getLogger("inferwatch.publish")

from ..errors import KafkaUnavailable

RENEW_AFTER = 30.0  # seconds of failing sends after which the producer is replaced
Shrink = Callable[[str, tuple[bytes | None, bytes]], "tuple[bytes | None, bytes] | None"]


def _errors():
    from aiokafka import errors

    too_large = (errors.MessageSizeTooLargeError, errors.RecordTooLargeError, errors.RecordListTooLargeError)
    fatal = (errors.TopicAuthorizationFailedError, errors.InvalidTopicError, errors.CorruptRecordException)
    return too_large, fatal


def _transient(exc) -> bool:
    """An error a later attempt may not meet: a broker away, a timeout, a leader moving."""
    from aiokafka import errors

    return bool(getattr(exc, "retriable", False)) or isinstance(
        exc, (errors.KafkaTimeoutError, errors.KafkaConnectionError, errors.RequestTimedOutError,
              errors.NodeNotReadyError))


def _failed(exc: BaseException) -> asyncio.Future:
    future = asyncio.get_running_loop().create_future()
    future.set_exception(exc)
    return future


class BatchPublisher:
    def __init__(self, bootstrap_servers: str) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.producer = None
        self.starting = asyncio.Lock()  # several partitions' deliveries share one producer
        self.turn = -1
        self.failing_since = 0.0

    async def _started(self):
        async with self.starting:
            if self.producer is None:
                from aiokafka import AIOKafkaProducer

                producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap_servers, acks="all", linger_ms=0,
                                            max_request_size=8 << 20)
                try:
                    await producer.start()
                except BaseException:
                    await producer.stop()
                    raise
                self.producer = producer
        return self.producer

    async def to_partition(self, topic: str, partition: int, records: list[tuple[bytes | None, bytes]]) -> list:
        """Send ``records`` (key, value) to one partition, in order; return (records, ack future) per batch."""
        from aiokafka.errors import RecordTooLargeError

        producer = await self._started()
        out, batch, members = [], producer.create_batch(), []
        for key, value in records:
            if batch.append(key=key, value=value, timestamp=None) is None:
                if members:
                    out.append((members, await producer.send_batch(batch, topic, partition=partition)))
                batch, members = producer.create_batch(), []
                if batch.append(key=key, value=value, timestamp=None) is None:  # over the request size alone
                    out.append(([(key, value)], _failed(RecordTooLargeError(f"{len(value)} bytes"))))
                    batch = producer.create_batch()
                    continue
            members.append((key, value))
        if members:
            out.append((members, await producer.send_batch(batch, topic, partition=partition)))
        return out

    async def keyed(self, topic: str, records: list[tuple[bytes | None, bytes]]) -> list:
        """Send ``records`` with the partition chosen from each key; return the ack futures."""
        from aiokafka.errors import MessageSizeTooLargeError

        producer = await self._started()
        futures = []
        for key, value in records:
            try:
                futures.append(await producer.send(topic, value=value, key=key))
            except MessageSizeTooLargeError as exc:  # over the producer's request size: refused before sending
                futures.append(_failed(exc))
        return futures

    async def deliver(self, sends: list[tuple[str, int | None, list[tuple[bytes | None, bytes]]]],
                      shrink: Shrink | None = None) -> int:
        """Send every (topic, partition or None for keyed, records) and wait for the acks; return records refused.

        Outages are retried with back-off, logging once when Kafka goes and
        once when it is back (at least once: a retry may repeat records).
        Only what was not acknowledged is sent again, never a whole batch
        because one record failed. A record the broker refuses for good (too
        large) is first isolated, then offered to ``shrink(topic, record)``
        for a smaller stand-in (a truncated dead letter); if there is none,
        or that is refused too, it is logged, counted and dropped: nothing is
        retried for ever that can never succeed.
        """
        from aiokafka.errors import KafkaError

        too_large, fatal = _errors()
        pending = [(topic, partition, list(records)) for topic, partition, records in sends if records]
        refused, delay, failing = 0, 0.2, False
        while pending:
            jobs, retry, outage = [], [], None
            for topic, partition, records in pending:
                try:
                    jobs += await self._send(topic, partition, records)
                except KafkaError as exc:  # the producer could not start or take them: an outage; keep the rest
                    if not _transient(exc):
                        raise
                    outage = exc
                    retry.append((topic, partition, records))
            results = await asyncio.gather(*(future for *_, future in jobs), return_exceptions=True)
            for (topic, partition, records, _), result in zip(jobs, results):
                if not isinstance(result, BaseException):
                    continue
                if isinstance(result, too_large):
                    if len(records) > 1:  # find the one: each record alone
                        retry += [(topic, partition, [record]) for record in records]
                        continue
                    smaller = shrink(topic, records[0]) if shrink is not None else None
                    if smaller is not None and len(smaller[1]) < len(records[0][1]):
                        retry.append((topic, partition, [smaller]))
                        continue
                    refused += 1
                    log.error("kafka refused a record of %d bytes on %s for good (%s): dropped",
                              len(records[0][1]), topic, type(result).__name__)
                elif isinstance(result, fatal) or (isinstance(result, KafkaError) and not _transient(result)):
                    raise result  # refused for a reason no retry can change (authorisation, an invalid topic)
                elif isinstance(result, KafkaError):
                    outage = result
                    retry.append((topic, partition, records))
                else:
                    raise result
            pending = retry
            if outage is not None:
                failing = await self._outage(outage, failing, delay)
                delay = min(delay * 2, 10.0)
        if failing:
            log.warning("kafka available again: publishing resumed")
        return refused

    async def _send(self, topic: str, partition: int | None, records: list) -> list:
        """(topic, partition, the records of one request, its ack future) for each request made."""
        if partition is None and all(key is None for key, _ in records):
            partition = await self._any_partition(topic)  # unkeyed (dead letters): batched, not one send each
        if partition is None:
            futures = await self.keyed(topic, records)
            return [(topic, None, [record], future) for record, future in zip(records, futures)]
        return [(topic, partition, batch, future) for batch, future in await self.to_partition(topic, partition, records)]

    async def _any_partition(self, topic: str) -> int:
        """A partition of ``topic`` for unkeyed records, taking each in turn call by call."""
        producer = await self._started()
        parts = sorted(await producer.partitions_for(topic))
        self.turn += 1
        return parts[self.turn % len(parts)]

    async def _outage(self, exc, failing: bool, delay: float) -> bool:
        """Log the outage once and back off. The producer reconnects by itself; one that has failed for
        ``RENEW_AFTER`` seconds on end is replaced (after a broker restart it can keep stale metadata)."""
        now = asyncio.get_running_loop().time()
        if not failing:
            log.warning("kafka unavailable (%s): retrying with back-off, nothing is dropped", exc)
            self.failing_since = now
        elif now - self.failing_since >= RENEW_AFTER and self.producer is not None:
            log.info("kafka still unavailable after %.0f s: starting a new producer", now - self.failing_since)
            producer, self.producer = self.producer, None
            try:
                await asyncio.wait_for(producer.stop(), timeout=10)
            except Exception as stop_error:  # a producer that cannot even stop is dropped all the same
                log.info("the old producer did not stop cleanly (%s)", type(stop_error).__name__)
            self.failing_since = now
        await asyncio.sleep(delay)
        return True

    @staticmethod
    async def wait(futures: list) -> None:
        if futures:
            await asyncio.gather(*futures)

    async def stop(self) -> None:
        if self.producer is not None:
            await self.producer.stop()
            self.producer = None


def ensure_topics(bootstrap_servers: str, topics: list[str], partitions: int = 1,
                  configs: dict[str, dict[str, str]] | None = None) -> None:
    """Create the topics that do not exist yet (blocking; another process creating one first is fine).

    ``configs`` gives topic settings by name (the dead-letter topic's ``max.message.bytes``).
    """
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka import errors

    # a broker away (before or during these calls) is an outage, which the caller waits out;
    # RetriableError covers the rest of kafka-python's transient errors (a leader moving, a timeout)
    outage = tuple(getattr(errors, name) for name in ("NoBrokersAvailable", "KafkaConnectionError",
                                                      "KafkaTimeoutError", "NodeNotReadyError", "RetriableError")
                   if hasattr(errors, name))
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers)
        try:
            have = set(admin.list_topics())
            for topic in dict.fromkeys(t for t in topics if t not in have):
                try:
                    admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1,
                                                  topic_configs=(configs or {}).get(topic, {}))])
                except errors.TopicAlreadyExistsError:
                    pass
        finally:
            admin.close()
    except outage as exc:
        raise KafkaUnavailable(f"cannot reach Kafka at {bootstrap_servers} ({type(exc).__name__})") from None
