"""Publishing many records fast: librdkafka batches in its own threads, not one Faust send per record.

Faust's ``topic.send`` costs tens of microseconds a record, aiokafka's batches
a few (in Python, on the event loop the monitor shares a core with);
librdkafka's ``produce`` takes about a microsecond and batches, sends and
retries in C threads. :meth:`BatchPublisher.deliver` queues records, waits
for the broker's acks, and says which were refused; the caller lets its input
offsets be committed only after that.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from ..errors import KafkaUnavailable
from .kafka_security import kafka_security
from .outage import outage

__all__ = ["BatchPublisher", "ensure_topics", "topic_partitions", "Shrink"]

log = logging.getLogger("inferwatch.publish")

Shrink = Callable[[str, tuple[bytes | None, bytes]], "tuple[bytes | None, bytes] | None"]
Record = tuple[bytes | None, bytes]
Send = tuple[str, "int | None", list[Record]]  # (topic, partition or None: chosen from the key, records)

MAX_RECORD_BYTES = 8 << 20  # the largest record the producer takes at all; the topic's own limit may be lower
MESSAGE_TIMEOUT_MS = 120_000  # librdkafka retries an unacknowledged record this long, then hands it back to us
# a producer whose unacknowledged records have not shrunk for this long (past their own timeout: it hands none
# back) is wedged: its records are purged and sent again by a new one (a worker once waited on such a producer
# for five minutes after a broker restart, the broker up and a new client delivering at once)
STALL_SECONDS = MESSAGE_TIMEOUT_MS / 1000 + 60.0 + 30.0  # (+ a request's socket timeout, + a margin)
PURGE_SECONDS = 30.0  # a purged producer's records are handed back within this, or are all sent again
QUEUE_MESSAGES = 2_000_000  # records librdkafka may hold unacknowledged (a batch of dead letters fits)


def _codes(*names: str) -> frozenset[int]:
    from confluent_kafka import KafkaError

    return frozenset(getattr(KafkaError, name) for name in names)


def _transient(error) -> bool:
    """An error a later attempt may not meet: a broker away, a timeout, a leader moving, a topic being made."""
    return error.retriable() or error.code() in _codes(
        "_MSG_TIMED_OUT", "_TIMED_OUT", "_TIMED_OUT_QUEUE", "_TRANSPORT", "_ALL_BROKERS_DOWN", "REQUEST_TIMED_OUT",
        "UNKNOWN_TOPIC_OR_PART", "_UNKNOWN_TOPIC", "LEADER_NOT_AVAILABLE", "NOT_LEADER_FOR_PARTITION",
        "_PURGE_QUEUE", "_PURGE_INFLIGHT")  # (a wedged producer's records, purged: a new one sends them)


class BatchPublisher:
    """One librdkafka producer shared by every caller; :meth:`deliver` returns once the broker acknowledged."""

    def __init__(self, bootstrap_servers: str) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.producer = None
        self.kafka = outage("kafka")

    def _started(self):
        if self.producer is None:
            from confluent_kafka import Producer

            from .kafka_reader import librdkafka_log

            self.producer = Producer({
                # one request in flight per broker keeps each partition's order through retries without the
                # idempotent producer, whose id comes from a coordinator that can take seconds after a restart
                "bootstrap.servers": self.bootstrap_servers, "acks": "all", "max.in.flight.requests.per.connection": 1,
                "linger.ms": 2, "message.max.bytes": MAX_RECORD_BYTES, "message.timeout.ms": MESSAGE_TIMEOUT_MS,
                "queue.buffering.max.messages": QUEUE_MESSAGES, "queue.buffering.max.kbytes": 1 << 21,
                "partitioner": "murmur2_random",  # a key goes where Java's producer (and aiokafka) would put it
                "reconnect.backoff.max.ms": 1000,  # a broker back after a restart is used within a second, not ten
                "delivery.report.only.error": True,  # a callback per failed record only: an ack costs no Python
                "error_cb": self._error, "logger": librdkafka_log, **kafka_security().librdkafka()})
        return self.producer

    def _error(self, error) -> None:
        """In a flush thread: say once that no broker answers (librdkafka keeps retrying by itself)."""
        if error.fatal():
            log.error("kafka: fatal producer error %s", error.str())
        elif error.code() in _codes("_ALL_BROKERS_DOWN"):
            self.kafka.lost(error.str())

    async def deliver(self, sends: list[Send], shrink: Shrink | None = None) -> int:
        """Send every (topic, partition or None for keyed, records) and wait for the acks; return records refused.

        Outages are retried (librdkafka retries for ``MESSAGE_TIMEOUT_MS``, then
        this loop sends what timed out again, with back-off), logging once when
        Kafka goes and once when it is back. Only what was not acknowledged is
        sent again, never a whole batch because one record failed. A record
        the broker refuses for good (too large) is first sent alone (it may
        have shared a request with others), then offered to
        ``shrink(topic, record)`` for a smaller stand-in (a truncated dead
        letter); if there is none, or that is refused too, it is logged,
        counted and dropped: nothing is retried for ever that can never succeed.
        """
        too_large = _codes("MSG_SIZE_TOO_LARGE", "RECORD_LIST_TOO_LARGE", "INVALID_MSG_SIZE")
        rounds: list[tuple[list[Send], bool]] = [([s for s in sends if s[2]], False)]  # (sends, each record alone)
        refused, delay = 0, 0.2
        while rounds:
            todo, alone = rounds.pop(0)
            retry, outage = [], None
            failures, used = await self._round(todo)
            for topic, partition, record, error in failures:
                if error.code() in too_large:
                    if not alone:
                        rounds.append(([(topic, partition, [record])], True))
                        continue
                    smaller = shrink(topic, record) if shrink is not None else None
                    if smaller is not None and len(smaller[1]) < len(record[1]):
                        rounds.append(([(topic, partition, [smaller])], True))
                        continue
                    refused += 1
                    log.error("kafka refused a record of %d bytes on %s for good (%s): dropped",
                              len(record[1]), topic, error.name())
                elif _transient(error):
                    outage = error
                    retry.append((topic, partition, [record]))
                else:  # refused for a reason no retry can change (authorisation, an invalid topic)
                    from confluent_kafka import KafkaException

                    raise KafkaException(error)
            if outage is not None:
                rounds.insert(0, (retry, alone))
                held = [used]  # (its last reference, for a thread to drop)
                del used
                await self._restart(held)  # a producer that lost its broker may not find it again: a new one will
                await self._outage(outage, delay)
                delay = min(delay * 2, 10.0)
        if any(records for _, _, records in sends):  # the broker acknowledged something: it is back
            self.kafka.back()
        return refused

    async def _round(self, sends: list[Send]) -> tuple[list, object]:
        """Queue every record, wait until librdkafka holds none (a wedged producer's are purged, see
        ``STALL_SECONDS``); (topic, partition, record, error) per failure, and the producer used."""
        from confluent_kafka import KafkaException

        producer = self._started()
        failures: list = []
        for topic, partition, records in sends:
            def failed(error, msg, topic=topic, partition=partition) -> None:  # in a flush thread, failures only
                failures.append((topic, partition, (msg.key(), msg.value()), error))

            number = -1 if partition is None else partition
            for key, value in records:
                while True:
                    try:
                        producer.produce(topic, value, key, number, on_delivery=failed)
                        break
                    except BufferError:  # librdkafka's queue is full: let it drain a little
                        await asyncio.to_thread(producer.flush, 0.5)
                    except KafkaException as exc:  # refused before sending: over message.max.bytes
                        failures.append((topic, partition, (key, value), exc.args[0]))
                        break
        loop = asyncio.get_running_loop()
        before, since = None, loop.time()
        while left := await asyncio.to_thread(producer.flush, 1.0):
            fell, before = before is None or left < before, left  # (the queue is shared: any fall is progress)
            if fell:
                since = loop.time()
            elif loop.time() - since > STALL_SECONDS:
                log.info("kafka: %d records unacknowledged for %.0f s: purged, to be sent again by a new producer",
                         left, loop.time() - since)
                producer.purge()  # each is handed back (failed(): _PURGE_QUEUE or _PURGE_INFLIGHT, transient)
                deadline = loop.time() + PURGE_SECONDS
                while await asyncio.to_thread(producer.flush, 1.0) and loop.time() < deadline:
                    pass
                if producer.flush(0):  # not all handed back: whether they were delivered is unknown, all go again
                    from confluent_kafka import KafkaError

                    failures[:] = [(topic, partition, record, KafkaError(KafkaError._PURGE_QUEUE))
                                   for topic, partition, records in sends for record in records]
                break
        return failures, producer

    async def _restart(self, held: list) -> None:
        """Drop ``held[0]``, the producer of a round that failed, if it is still the one (concurrent rounds
        share it: the first to fail replaces it, once); the next round starts a new one. It is destroyed in a
        thread when ``held`` has its last reference (librdkafka joins its own threads there, not on the loop)."""
        if self.producer is held[0]:
            self.producer = None
        await asyncio.to_thread(held.clear)

    async def _outage(self, error, delay: float) -> None:
        self.kafka.lost(error.str())
        await asyncio.sleep(delay)

    async def stop(self) -> None:
        """Wait (a little) for what is still queued; a record not acknowledged was never counted as sent."""
        if self.producer is not None:
            producer, self.producer = self.producer, None
            await asyncio.to_thread(producer.flush, 5.0)


def ensure_topics(bootstrap_servers: str, topics: list[str], partitions: int = 1,
                  configs: dict[str, dict[str, str]] | None = None) -> None:
    """Create the topics that do not exist yet (blocking; another process creating one first is fine).

    ``configs`` gives topic settings by name (the dead-letter topic's ``max.message.bytes``).
    """
    from kafka import errors
    from kafka.admin import KafkaAdminClient, NewTopic

    # a broker away (before or during these calls) is an outage, which the caller waits out;
    # RetriableError covers the rest of kafka-python's transient errors (a leader moving, a timeout)
    outage = tuple(getattr(errors, name) for name in ("NoBrokersAvailable", "KafkaConnectionError",
                                                      "KafkaTimeoutError", "NodeNotReadyError", "RetriableError")
                   if hasattr(errors, name))
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers, **kafka_security().kafka_python())
        try:
            have = set(admin.list_topics())
            for topic in dict.fromkeys(t for t in topics if t not in have):
                try:
                    admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1,
                                                  topic_configs=(configs or {}).get(topic, {}))])
                except errors.TopicAlreadyExistsError:
                    pass
                except errors.InvalidReplicationFactorError:  # one replica is asked for: no broker is up yet
                    raise KafkaUnavailable(f"no broker of {bootstrap_servers} takes topics yet (fenced after a "
                                           "restart?)") from None
        finally:
            admin.close()
    except outage as exc:
        raise KafkaUnavailable(f"cannot reach Kafka at {bootstrap_servers} ({type(exc).__name__})"
                               f"{kafka_security().hint()}") from None


def topic_partitions(bootstrap_servers: str, topic: str) -> int:
    """How many partitions ``topic`` has; 0 when it does not exist (asked without creating it: blocking)."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    from .kafka_reader import librdkafka_log

    try:  # every topic's metadata: asking for one by name may create it where the broker creates on demand
        found = AdminClient({"bootstrap.servers": bootstrap_servers, "logger": librdkafka_log,
                             **kafka_security().librdkafka()}).list_topics(timeout=10)
    except KafkaException as exc:
        raise KafkaUnavailable(f"cannot read the topics of {bootstrap_servers} ({exc.args[0].name()})"
                               f"{kafka_security().hint()}") from None
    meta = found.topics.get(topic)
    return 0 if meta is None or meta.error is not None else len(meta.partitions)
