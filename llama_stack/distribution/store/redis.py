"""Redis kvstore (redis.asyncio).

Layout: every entry of every store that shares a Redis database lives in two Redis keys:
  - the hash  `llamastack:kvstore:data`   field = (namespaced) key, value = value
  - the zset  `llamastack:kvstore:index`  member = (namespaced) key, score 0

All members of the index have the same score, so Redis orders them lexicographically by their
bytes (memcmp of UTF-8, which is code point order, i.e. Python's `str` order), and ZRANGEBYLEX
answers both range and prefix queries in O(log N + M) without scanning the keyspace (a SCAN with
a glob would read every key of the database and needs wildcard escaping). `set` and `delete`
update the hash and the index in one MULTI/EXEC transaction, so replicas sharing the database
never see one without the other. A range read takes the keys from the index, then their values
from the hash; an entry deleted between the two calls is left out.

Keeping the data in fixed Redis keys (rather than one Redis key per entry) means no stored key can
ever collide with the index, whatever its name.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from .api import RedisKVStoreConfig, key_prefix, prefix_upper_bound, redact

DATA_KEY = "llamastack:kvstore:data"
INDEX_KEY = "llamastack:kvstore:index"
# Counters are one Redis key each (a hash field cannot expire on its own before Redis 7.4).
COUNTER_PREFIX = "llamastack:kvstore:counter:"
_HMGET_BATCH = 1000


def describe_url(url: str) -> str:
    """The URL without its user and password, for messages."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if parts.port is not None:
            host = f"{host}:{parts.port}"
        return urlunsplit((parts.scheme, host, parts.path, "", ""))
    except ValueError:
        return "<unparsable redis url>"


def _password(url: str) -> str | None:
    try:
        return urlsplit(url).password
    except ValueError:
        return None


class RedisKVStore:
    def __init__(self, client: aioredis.Redis, namespace: str | None) -> None:
        self._client = client
        self._prefix = key_prefix(namespace)
        self._closed = False

    @classmethod
    async def open(cls, config: RedisKVStoreConfig) -> RedisKVStore:
        address = describe_url(config.url)
        try:
            client = aioredis.Redis.from_url(
                config.url, decode_responses=True, socket_connect_timeout=5, socket_timeout=30
            )
        except ValueError as e:
            reason = redact(str(e), _password(config.url))
            raise ConnectionError(f"redis: invalid url {address}: {reason}") from e
        try:
            await client.ping()
        except (RedisError, OSError) as e:
            await client.aclose()
            message = redact(str(e), _password(config.url))
            raise ConnectionError(f"redis: cannot connect to {address}: {message}") from e
        return cls(client, config.namespace)

    async def get(self, key: str) -> str | None:
        value = await self._client.hget(DATA_KEY, self._prefix + key)
        return None if value is None else str(value)

    async def set(self, key: str, value: str) -> None:
        full = self._prefix + key
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.hset(DATA_KEY, full, value)
            pipe.zadd(INDEX_KEY, {full: 0})
            await pipe.execute()

    async def delete(self, key: str) -> None:
        full = self._prefix + key
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.hdel(DATA_KEY, full)
            pipe.zrem(INDEX_KEY, full)
            await pipe.execute()

    async def values_in_range(self, start_key: str, end_key: str) -> list[str]:
        if start_key >= end_key:
            return []
        keys = await self._client.zrangebylex(INDEX_KEY, "[" + self._prefix + start_key, "(" + self._prefix + end_key)
        values: list[str] = []
        for i in range(0, len(keys), _HMGET_BATCH):
            batch = await self._client.hmget(DATA_KEY, keys[i : i + _HMGET_BATCH])
            values.extend(str(v) for v in batch if v is not None)
        return values

    async def keys_with_prefix(self, prefix: str) -> list[str]:
        full = self._prefix + prefix
        upper = prefix_upper_bound(full)
        keys = await self._client.zrangebylex(INDEX_KEY, "[" + full, "+" if upper is None else "(" + upper)
        cut = len(self._prefix)
        return [str(k)[cut:] for k in keys]

    async def increment(self, key: str, by: int = 1, ttl_s: float | None = None) -> int:
        counter = COUNTER_PREFIX + self._prefix + key
        async with self._client.pipeline(transaction=True) as pipe:
            # SET NX creates the counter with its expiry only when it is missing (or expired);
            # INCRBY then adds, both in one MULTI/EXEC.
            if ttl_s is None:
                pipe.set(counter, 0, nx=True)
            else:
                pipe.set(counter, 0, nx=True, px=max(1, round(ttl_s * 1000)))
            pipe.incrby(counter, by)
            _, value = await pipe.execute()
        return int(value)

    async def counter(self, key: str) -> int:
        value = await self._client.get(COUNTER_PREFIX + self._prefix + key)
        return 0 if value is None else int(value)

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await self._client.aclose()
