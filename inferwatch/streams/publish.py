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

__all__ = ["BatchPublisher", "ensure_topics"]

log = logging.getLogger("inferwatch.publish")


class BatchPublisher:
    def __init__(self, bootstrap_servers: str) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.producer = None

    async def _started(self):
        if self.producer is None:
            from aiokafka import AIOKafkaProducer

            producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap_servers, acks="all", linger_ms=0,
                                        max_request_size=8 << 20)
            await producer.start()
            self.producer = producer
        return self.producer

    async def to_partition(self, topic: str, partition: int, records: list[tuple[bytes | None, bytes]]) -> list:
        """Send ``records`` (key, value) to one partition, in order; return the ack futures."""
        producer = await self._started()
        futures, batch = [], producer.create_batch()
        for key, value in records:
            if batch.append(key=key, value=value, timestamp=None) is None:
                futures.append(await producer.send_batch(batch, topic, partition=partition))
                batch = producer.create_batch()
                if batch.append(key=key, value=value, timestamp=None) is None:
                    raise ValueError(f"a record of {len(value)} bytes does not fit in a batch")
        if batch.record_count():
            futures.append(await producer.send_batch(batch, topic, partition=partition))
        return futures

    async def keyed(self, topic: str, records: list[tuple[bytes | None, bytes]]) -> list:
        """Send ``records`` with the partition chosen from each key; return the ack futures."""
        producer = await self._started()
        return [await producer.send(topic, value=value, key=key) for key, value in records]

    async def deliver(self, sends: list[tuple[str, int | None, list[tuple[bytes | None, bytes]]]]) -> None:
        """Send every (topic, partition or None for keyed, records) and wait for the acks.

        On a Kafka error, back off and send it all again (at least once: a
        retry may repeat records), logging once when Kafka goes and once when
        it is back; nothing is dropped.
        """
        from aiokafka.errors import KafkaError

        delay, failing = 0.2, False
        while True:
            try:
                futures = []
                for topic, partition, records in sends:
                    if records:
                        futures += (await self.keyed(topic, records) if partition is None
                                    else await self.to_partition(topic, partition, records))
                await self.wait(futures)
                if failing:
                    log.warning("kafka available again: publishing resumed")
                return
            except KafkaError as exc:
                if not failing:
                    log.warning("kafka unavailable (%s): retrying with back-off, nothing is dropped", exc)
                    failing = True
                await self.stop()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    @staticmethod
    async def wait(futures: list) -> None:
        if futures:
            await asyncio.gather(*futures)

    async def stop(self) -> None:
        if self.producer is not None:
            await self.producer.stop()
            self.producer = None


def ensure_topics(bootstrap_servers: str, topics: list[str], partitions: int = 1) -> None:
    """Create the topics that do not exist yet (blocking; another process creating one first is fine)."""
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers)
    try:
        have = set(admin.list_topics())
        for topic in dict.fromkeys(t for t in topics if t not in have):
            try:
                admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
            except TopicAlreadyExistsError:
                pass
    finally:
        admin.close()
