"""kvstore: one small async key-value interface; sqlite (default), redis and postgres backends."""

from __future__ import annotations

import importlib

from .api import (
    KVStore,
    KVStoreConfig,
    MissingDependency,
    PostgresKVStoreConfig,
    RedisKVStoreConfig,
    SqliteKVStoreConfig,
)
from .guarded import GuardedKVStore

__all__ = [
    "KVStore",
    "KVStoreConfig",
    "MissingDependency",
    "PostgresKVStoreConfig",
    "RedisKVStoreConfig",
    "SqliteKVStoreConfig",
    "kvstore_from_config",
]


def _require(extra: str, backend: str, *modules: str) -> None:
    """Raise MissingDependency unless every module imports."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise MissingDependency(
                package_extra=extra,
                message=f"The {backend} kvstore needs the Python package {module!r}, which cannot be imported ({e}).",
            ) from e


async def kvstore_from_config(config: KVStoreConfig) -> KVStore:
    """Open the store `config` describes: connect, create its table, check the server answers.

    Raises MissingDependency when the backend's Python package is absent, ConnectionError when the
    database cannot be reached or opened (the message names the backend and the address, never a
    password).
    """
    if isinstance(config, SqliteKVStoreConfig):
        from .sqlite import SqliteKVStore

        return await SqliteKVStore.open(config)
    if isinstance(config, RedisKVStoreConfig):
        _require("redis", "redis", "redis.asyncio")
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        from .redis import RedisKVStore, describe_url

        redis_store = await RedisKVStore.open(config)
        redis_outages: tuple[type[BaseException], ...] = (RedisConnectionError, RedisTimeoutError, OSError)
        return GuardedKVStore(redis_store, f"redis kvstore at {describe_url(config.url)}", redis_outages)
    if isinstance(config, PostgresKVStoreConfig):
        _require("postgres", "postgres", "psycopg", "psycopg_pool")
        import psycopg
        from psycopg_pool import PoolTimeout

        from .postgres import PostgresKVStore, describe_dsn

        pg_store = await PostgresKVStore.open(config)
        pg_outages: tuple[type[BaseException], ...] = (psycopg.OperationalError, PoolTimeout, OSError)
        return GuardedKVStore(pg_store, f"postgres kvstore at {describe_dsn(config.dsn)}", pg_outages)
    raise TypeError(f"not a kvstore config: {type(config).__name__}")
