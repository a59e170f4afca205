"""Partition state in Redis: the monitor's state and the partition's next offset, written together.

One hash per (namespace, topic, partition) holds ``next`` (the next offset to
read), ``doc`` (a msgpack document with that offset, counters and the
pipeline's head: schema, config fingerprint, model names), a field per model
(``model:<name>``, its detectors' state) and a field per codebook-and-lanes
part (``fixed:<digest>``, written once, when a model is calibrated). A save
writes ``next``, ``doc`` and only the fields that changed (the models the batch
touched), so 1,000 models in a partition do not rewrite 1,000 states for a
batch of one. A save is one Lua script: it writes them only if
``next`` is still what the worker loaded, so state and offset never disagree,
and a worker that lost the partition in a rebalance cannot overwrite the new
owner's progress (:class:`StaleState`). A save whose ``next`` is already
stored has landed before (a retry after Redis went away between the write
and its reply): it succeeds and writes nothing. A save that does not move
``next`` (labels read beside the events while no event came) writes if
``next`` is still ``loaded``. The same events from the
same state give the same state, whoever saved it. After a crash the worker resumes at
the offset the state says, and skips every event below it.

A Redis Cluster is used as it is (the save touches one key, hence one slot).
Redis errors surface as :class:`StateUnavailable`; callers retry with back-off.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import msgspec
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import (
    AuthenticationError,
    AuthorizationError,
    ClusterDownError,
    ReadOnlyError,
    RedisClusterException,
    ResponseError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..errors import ConfigError, StaleState, StateError, StateUnavailable
from .outage import outage
from .secret_url import SecretURL, reveal

# redis-py makes a refused password a ConnectionError: it is a configuration error, not an outage to wait out
_REFUSED = (AuthenticationError, AuthorizationError)
# an outage, retried by the caller: a connection or a timeout, a replica promoted mid-failover (read-only),
# a cluster with a slot not served yet, or a cluster none of whose nodes answers (redis-py says so with its
# RedisClusterException, SlotNotCoveredError included; a cluster URL it cannot use fails when the client is made)
_AWAY = (RedisConnectionError, RedisTimeoutError, ReadOnlyError, ClusterDownError, RedisClusterException, OSError)

__all__ = ["StateUnavailable", "StaleState", "PartitionState", "RedisStateStore", "read_partitions", "retrying"]

log = logging.getLogger("inferwatch.state")
DOC_VERSION = 3  # 3: models in fields of their own



_SAVE = """
local current = redis.call('HGET', KEYS[1], 'next')
if current == ARGV[2] and ARGV[1] ~= ARGV[2] then return 1 end
if (current or '-1') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'next', ARGV[2], 'doc', ARGV[3])
for i = 4, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
return 1
"""


class PartitionState(msgspec.Struct):
    """A partition's stored document: its next offset, the pipeline's head and counters."""

    next_offset: int = 0
    pipeline: bytes | None = None  # the head of Pipeline.to_parts(): schema, model names, config fingerprint
    events: int = 0
    dead_letters: int = 0
    version: int = DOC_VERSION
    latest: float = float("-inf")  # route stage: the partition's place in event time (its merge key)
    recent: list[float] = msgspec.field(default_factory=list)  # route stage: its last two readable event times
    resume_offset: int = -1  # detect stage: where to read again after a restart (-1: next_offset)
    merger: bytes | None = None  # detect stage: the event-time merge's marks (EventTimeMerger.resume), msgpack
    labels_next: dict[int, int] = msgspec.field(default_factory=dict)  # direct stage: labels partition -> next offset

    def start(self) -> int:
        """The offset to read from when the partition is assigned."""
        return max(self.resume_offset if self.resume_offset >= 0 else self.next_offset, 0)

    def to_bytes(self) -> bytes:
        return msgspec.msgpack.encode(self)

    @classmethod
    def from_bytes(cls, data: bytes, where: str = "partition state") -> PartitionState:
        try:
            state = msgspec.msgpack.decode(data, type=cls)
        except msgspec.DecodeError as exc:  # ValidationError is one
            raise StateError(f"{where}: the document does not decode ({exc})") from None
        if state.version != DOC_VERSION:
            raise StateError(f"{where}: document version {state.version} is not {DOC_VERSION}")
        return state


class RedisStateStore:
    """Load and save :class:`PartitionState` documents under ``inferwatch:<namespace>:``.

    A Redis Cluster is recognised at the first call (``INFO cluster``) and
    spoken to as one: every write is one key (a partition's hash), so the
    save script always runs within one slot, on the master that owns it.
    """

    def __init__(self, url: str, namespace: str = "live") -> None:
        self.url = SecretURL(url)  # its password never shows in a repr, a log line or a stack dump
        self.client: Any = None  # a Redis or a RedisCluster client, chosen at the first call
        self.prefix = f"inferwatch:{namespace}:"
        self.cluster = False

    def key(self, topic: str, partition: int) -> str:
        return f"{self.prefix}partition:{topic}:{partition}"

    async def _connect(self) -> Any:
        if self.client is None:
            plain = aioredis.Redis.from_url(reveal(self.url), socket_timeout=5, socket_connect_timeout=5)
            try:
                enabled = (await plain.info("cluster")).get("cluster_enabled") in (1, "1")
            except ResponseError:  # INFO disabled (managed Redis): a single server, as most are
                enabled = False
            except BaseException:
                await plain.aclose()  # no client is kept from a call that failed: the next call makes one
                raise
            if enabled:
                await plain.aclose()
                try:
                    plain = RedisCluster.from_url(reveal(self.url), socket_timeout=5, socket_connect_timeout=5)
                except RedisClusterException as exc:  # e.g. a database other than 0 in the URL
                    raise ConfigError(f"--redis-url / REDIS_URL names a Redis Cluster it cannot use: {exc}") from None
            self.client, self.cluster = plain, enabled
            self.save_script = plain.register_script(_SAVE)  # our constant Lua, run by Redis (EVALSHA)
        return self.client

    async def _run(self, call):
        """``await call(client)``; a refused password is a config error, an outage :class:`StateUnavailable`."""
        try:
            return await call(await self._connect())
        except _REFUSED as exc:
            raise ConfigError(f"redis refused the credentials of --redis-url / REDIS_URL ({exc})") from None
        except _AWAY as exc:
            raise StateUnavailable(str(exc)) from exc

    async def load(self, topic: str, partition: int) -> tuple[PartitionState, int, dict[str, bytes]]:
        """The state, the ``next`` value to pass back to :meth:`save` (-1 if new), and the other fields."""
        key = self.key(topic, partition)
        found = await self._run(lambda client: client.hgetall(key))
        return _split(key, found)

    async def reset(self, topic: str, partition: int) -> None:
        """Delete a partition's state (one that cannot be trusted, when the policy says start over)."""
        await self._run(lambda client: client.delete(self.key(topic, partition)))

    async def persistence(self) -> str | None:
        """Why a restart of this Redis would lose the states (no AOF, no snapshots), or None; None if unknown."""
        async def read(client) -> dict:
            config = dict(await client.config_get("appendonly"))
            config.update(await client.config_get("save"))
            return config

        try:
            config = await self._run(read)
        except (ConfigError, StateUnavailable):
            raise
        except Exception:  # CONFIG is often disabled on managed Redis: nothing to say
            return None
        if config.get("appendonly") == "no" and not config.get("save"):
            return "appendonly is off and there are no snapshot points"
        return None

    async def save(self, topic: str, partition: int, state: PartitionState, loaded: int,
                   fields: dict[str, bytes] | None = None) -> None:
        """Write the state, its offset and ``fields`` (the models that changed), if ``next`` is still ``loaded``."""
        args: list[str | bytes] = [str(loaded), str(state.next_offset), state.to_bytes()]
        for name, value in sorted((fields or {}).items()):
            args += [name, value]
        done = await self._run(lambda client: self.save_script(keys=[self.key(topic, partition)], args=args))
        if not done:
            raise StaleState(f"{topic}:{partition} moved on since offset {loaded}")

    async def partitions(self, fields: bool = False) -> dict[str, Any]:
        """Every partition's state (with ``fields``: ``(state, fields)``); an unreadable one is its
        :class:`StateError`, not an exception."""
        async def read(client) -> tuple[list, list]:
            keys = sorted({k async for k in client.scan_iter(match=f"{self.prefix}partition:*")})
            if fields:
                return keys, [await client.hgetall(k) for k in keys]
            return keys, [dict(zip((b"next", b"doc"), await client.hmget(k, ["next", "doc"]))) for k in keys]

        keys, values = await self._run(read)
        out: dict[str, Any] = {}
        for k, v in zip(keys, values):
            name = k.decode()[len(self.prefix) + len("partition:"):]
            try:
                state, stored, found = _split(k.decode(), {a: b for a, b in v.items() if b is not None})
                if stored >= 0:
                    out[name] = (state, found) if fields else state
            except StateError as exc:
                out[name] = exc
        return out

    async def close(self) -> None:
        if self.client is not None:
            await self.client.aclose()


def _split(key: str, found: dict[bytes, bytes]) -> tuple[PartitionState, int, dict[str, bytes]]:
    """A partition hash read back: (its document, its ``next``, -1 if there is none, its other fields)."""
    stored, data = found.pop(b"next", None), found.pop(b"doc", None)
    if stored is None and not data:
        if found:
            raise StateError(f"{key}: the hash holds {len(found)} field(s) but no document and no next offset")
        return PartitionState(), -1, {}
    if not data or stored is None:
        raise StateError(f"{key}: the hash holds {'no document' if not data else 'no next offset'}")
    state = PartitionState.from_bytes(data, key)
    if stored != str(state.next_offset).encode():
        raise StateError(f"{key}: next offset {stored!r} disagrees with the document's {state.next_offset}")
    try:
        fields = {k.decode(): v for k, v in found.items()}
    except UnicodeDecodeError:
        raise StateError(f"{key}: a field name is not UTF-8") from None
    return state, state.next_offset, fields


def read_partitions(url: str, namespace: str, fields: bool = False) -> dict[str, Any]:
    """Every partition state of a namespace, ``{"topic:partition": state}`` (with ``fields``: ``(state, fields)``;
    an unreadable one is its :class:`StateError`). Blocking, for tools and tests."""
    async def read():
        store = RedisStateStore(url, namespace)
        try:
            return await store.partitions(fields)
        finally:
            await store.close()

    return asyncio.run(read())


async def retrying(what: str, call, *, first: float = 0.2, most: float = 10.0):
    """Await ``call()`` until it stops raising :class:`ConnectionError`; one log line per outage in the process."""
    delay, service = first, outage(what)
    while True:
        try:
            result = await call()
        except ConnectionError as exc:
            service.lost(exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, most)
            continue
        service.back()
        return result
