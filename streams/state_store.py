"""Partition state in Redis: the monitor's state and the partition's next offset, written together.

One key per (namespace, topic, partition) holds a msgpack document with the
next offset to read, the stream schema and the core's state bytes. A single
``SET`` is atomic, so state and offset can never disagree: after a crash the
worker resumes at the offset the state says, and skips every event below it.

Redis errors surface as :class:`StateUnavailable`; callers retry with back-off.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

__all__ = ["StateUnavailable", "PartitionState", "RedisStateStore", "retrying"]

log = logging.getLogger("inferwatch.state")
DOC_VERSION = 1


class StateUnavailable(ConnectionError):
    """Redis cannot be reached; nothing was read or written."""


@dataclass
class PartitionState:
    next_offset: int = 0
    schema: dict | None = None
    monitor: bytes | None = None
    events: int = 0
    dead_letters: int = 0
    extra: dict = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        return msgspec.msgpack.encode({
            "version": DOC_VERSION, "next_offset": self.next_offset, "schema": self.schema,
            "monitor": self.monitor, "events": self.events, "dead_letters": self.dead_letters,
            "extra": self.extra,
        })

    @classmethod
    def from_bytes(cls, data: bytes) -> "PartitionState":
        raw = msgspec.msgpack.decode(data)
        if raw.get("version") != DOC_VERSION:
            raise ValueError(f"partition state version {raw.get('version')!r} is not {DOC_VERSION}")
        return cls(int(raw["next_offset"]), raw["schema"], raw["monitor"], int(raw["events"]),
                   int(raw["dead_letters"]), raw.get("extra") or {})


class RedisStateStore:
    """Load and save :class:`PartitionState` documents under ``inferwatch:<namespace>:``."""

    def __init__(self, url: str, namespace: str = "live") -> None:
        self.client = aioredis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self.prefix = f"inferwatch:{namespace}:"

    def key(self, topic: str, partition: int) -> str:
        return f"{self.prefix}partition:{topic}:{partition}"

    async def load(self, topic: str, partition: int) -> PartitionState:
        try:
            data = await self.client.get(self.key(topic, partition))
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise StateUnavailable(str(exc)) from exc
        return PartitionState.from_bytes(data) if data else PartitionState()

    async def save(self, topic: str, partition: int, state: PartitionState) -> None:
        try:
            await self.client.set(self.key(topic, partition), state.to_bytes())
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise StateUnavailable(str(exc)) from exc

    async def partitions(self) -> dict[str, PartitionState]:
        try:
            keys = [k async for k in self.client.scan_iter(match=f"{self.prefix}partition:*")]
            values = await self.client.mget(keys) if keys else []
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise StateUnavailable(str(exc)) from exc
        return {k.decode()[len(self.prefix) + len("partition:"):]: PartitionState.from_bytes(v)
                for k, v in zip(keys, values) if v}

    async def close(self) -> None:
        await self.client.aclose()


async def retrying(what: str, call, *, first: float = 0.2, most: float = 10.0):
    """Await ``call()`` until it stops raising :class:`ConnectionError`; log once per outage."""
    delay, down = first, False
    while True:
        try:
            result = await call()
        except ConnectionError as exc:
            if not down:
                log.warning("%s unavailable, retrying with back-off: %s", what, exc)
                down = True
            await asyncio.sleep(delay)
            delay = min(delay * 2, most)
            continue
        if down:
            log.warning("%s available again", what)
        return result
