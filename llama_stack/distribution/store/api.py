"""The kvstore contract: one small async key-value interface, its configs and shared helpers.

Keys and values are `str`. Every backend orders keys by Unicode code point, which is Python's
`str` ordering (SQLite's BINARY collation, Postgres' `COLLATE "C"` and Redis' lexicographic
sorted-set ranges all compare UTF-8 bytes, and UTF-8 byte order equals code point order).

A `namespace` prefixes every key with `"<namespace>:"`, invisibly to the caller, so several stores
can share one database. A namespace may not contain ':' — otherwise namespace "a" would see the
keys of namespace "a:b". A store without a namespace sees every key of its database, the
namespaced ones included (as "<namespace>:<key>").
"""

from __future__ import annotations

from typing import Annotated, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "KVStore",
    "KVStoreConfig",
    "MissingDependency",
    "PostgresKVStoreConfig",
    "RedisKVStoreConfig",
    "SqliteKVStoreConfig",
]


class KVStore(Protocol):
    async def get(self, key: str) -> str | None:
        """The value stored under `key`, or None."""
        ...

    async def set(self, key: str, value: str) -> None:
        """Store `value` under `key`, replacing any previous value."""
        ...

    async def delete(self, key: str) -> None:
        """Remove `key`; removing a missing key is not an error."""
        ...

    async def values_in_range(self, start_key: str, end_key: str) -> list[str]:
        """Values whose keys are in [start_key, end_key), ordered by key."""
        ...

    async def keys_with_prefix(self, prefix: str) -> list[str]:
        """Keys that start with `prefix` (without the namespace), ordered."""
        ...

    async def increment(self, key: str, by: int = 1, ttl_s: float | None = None) -> int:
        """Add `by` to the counter `key` atomically (across every process sharing the database) and
        return its new value. A missing or expired counter starts from 0; `ttl_s` sets its expiry
        when it starts (later increments do not extend it), so a counter named after its time
        window ends by itself. Counters are a keyspace of their own, namespaced like the values:
        `get`, ranges and prefixes never see them."""
        ...

    async def counter(self, key: str) -> int:
        """The value of the counter `key`: 0 when it is missing or expired. Writes nothing."""
        ...

    async def close(self) -> None:
        """Release connections; calling it twice is harmless."""
        ...


_NAMESPACE_DESCRIPTION = "prefixes every key with '<namespace>:' so several stores can share a database"
Namespace = Annotated[
    str | None,
    Field(min_length=1, pattern=r"^[^:]+$", description=_NAMESPACE_DESCRIPTION),
]


class SqliteKVStoreConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["sqlite"] = "sqlite"
    db_path: str = Field(description="path of the database file; its parent folders are created")
    namespace: Namespace = None


class RedisKVStoreConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["redis"] = "redis"
    url: str = Field(default="redis://localhost:6379/0", description="redis:// rediss:// or unix:// URL")
    namespace: Namespace = None


class PostgresKVStoreConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["postgres"] = "postgres"
    dsn: str = Field(description="libpq connection string, e.g. postgresql://user:pass@host:5432/db")
    table_name: str = Field(
        default="llamastack_kvstore",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$",
        description="table holding the keys; created when missing",
    )
    namespace: Namespace = None


KVStoreConfig = Annotated[
    SqliteKVStoreConfig | RedisKVStoreConfig | PostgresKVStoreConfig,
    Field(discriminator="type"),
]


class MissingDependency(Exception):
    """A backend's Python package is not installed; `pip_command` installs it."""

    def __init__(self, package_extra: str, message: str) -> None:
        self.package_extra = package_extra
        self.pip_command = f"pip install 'llamastack-lite[{package_extra}]'"
        self.message = message
        super().__init__(f"{message} Install it with: {self.pip_command}")


# Helpers shared by the backends.


def key_prefix(namespace: str | None) -> str:
    """The string every stored key of this namespace starts with."""
    return f"{namespace}:" if namespace else ""


_MAX_CODE_POINT = 0x10FFFF
_SURROGATES_START, _SURROGATES_END = 0xD800, 0xDFFF


def prefix_upper_bound(prefix: str) -> str | None:
    """The smallest string greater than every string that starts with `prefix`.

    Prefix queries become the indexed range [prefix, bound) instead of LIKE/GLOB (whose wildcards
    a key may contain). None means no bound: the prefix is empty or made only of U+10FFFF.
    """
    stripped = prefix.rstrip(chr(_MAX_CODE_POINT))
    if not stripped:
        return None
    nxt = ord(stripped[-1]) + 1
    if _SURROGATES_START <= nxt <= _SURROGATES_END:
        # Surrogates cannot be encoded in UTF-8, so no stored key holds one; skip them.
        nxt = _SURROGATES_END + 1
    return stripped[:-1] + chr(nxt)


async def values_with_prefix(store: KVStore, prefix: str) -> list[str]:
    """Values whose keys start with `prefix` (not empty, not only U+10FFFF), ordered by key."""
    upper = prefix_upper_bound(prefix)
    if upper is None:
        raise ValueError(f"the prefix {prefix!r} bounds no range")
    return await store.values_in_range(prefix, upper)


# Expired counters are deleted on open and every this many increments of a process.
PURGE_EVERY = 1000


def redact(text: str, secret: str | None) -> str:
    """`text` with `secret` (a password) blanked out."""
    return text.replace(secret, "***") if secret else text
