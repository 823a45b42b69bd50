"""Postgres kvstore (psycopg 3 and its AsyncConnectionPool).

One table, `key TEXT COLLATE "C" PRIMARY KEY`: the "C" collation compares UTF-8 bytes, i.e. code
points, so `ORDER BY key` and range bounds agree with Python's `str` ordering whatever the
database's locale, and the primary key index serves both range and prefix queries. Writes are
single autocommit statements (an UPSERT for `set`). Postgres `TEXT` cannot hold NUL characters.
"""

from __future__ import annotations

import hashlib
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool

from .api import PURGE_EVERY, PostgresKVStoreConfig, key_prefix, prefix_upper_bound, redact

_CONNECT_TIMEOUT_S = 5
_POOL_MAX_SIZE = 10
# The longest a request waits for a connection: when Postgres is down the pool has none to give,
# and a caller should get the store's 503 at once rather than after the pool's default 30 s.
_CONNECTION_WAIT_S = 1.5


def describe_dsn(dsn: str) -> str:
    """host:port/dbname of a DSN, without user or password, for messages."""
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.Error:
        return "<unparsable dsn>"
    host = str(params.get("host") or params.get("hostaddr") or "localhost")
    port = str(params.get("port") or 5432)
    dbname = str(params.get("dbname") or params.get("user") or "")
    return f"{host}:{port}/{dbname}"


def counters_table(table_name: str) -> str:
    """The counters' table: `<table>_counters`, shortened with a hash past Postgres' 63 characters."""
    name = f"{table_name}_counters"
    if len(name) <= 63:
        return name
    return f"{table_name[:50]}_{hashlib.sha1(table_name.encode()).hexdigest()[:12]}"


def _password(dsn: str) -> str | None:
    try:
        password = conninfo_to_dict(dsn).get("password")
    except psycopg.Error:
        return None
    return str(password) if password else None


class PostgresKVStore:
    def __init__(
        self,
        pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]],
        table_name: str,
        namespace: str | None,
    ) -> None:
        self._pool = pool
        self._prefix = key_prefix(namespace)
        self._closed = False
        table = sql.Identifier(table_name)
        self._get = sql.SQL("SELECT value FROM {} WHERE key = %s").format(table)
        self._set = sql.SQL(
            "INSERT INTO {} (key, value) VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
        ).format(table)
        self._delete = sql.SQL("DELETE FROM {} WHERE key = %s").format(table)
        self._range = sql.SQL("SELECT value FROM {} WHERE key >= %s AND key < %s ORDER BY key").format(table)
        self._keys_from = sql.SQL("SELECT key FROM {} WHERE key >= %s ORDER BY key").format(table)
        self._keys_between = sql.SQL("SELECT key FROM {} WHERE key >= %s AND key < %s ORDER BY key").format(table)
        counters = sql.Identifier(counters_table(table_name))
        # One upsert: atomic under concurrency (the row is locked), timed by the database's clock.
        self._increment = sql.SQL(
            "INSERT INTO {} AS c (key, value, expires_at) VALUES (%s, %s, now() + make_interval(secs => %s::float8)) "
            "ON CONFLICT (key) DO UPDATE SET "
            "value = CASE WHEN c.expires_at <= now() THEN EXCLUDED.value ELSE c.value + EXCLUDED.value END, "
            "expires_at = CASE WHEN c.expires_at <= now() THEN EXCLUDED.expires_at ELSE c.expires_at END "
            "RETURNING value"
        ).format(counters)
        self._counter = sql.SQL(
            "SELECT value FROM {} WHERE key = %s AND (expires_at IS NULL OR expires_at > now())"
        ).format(counters)
        self._purge = sql.SQL("DELETE FROM {} WHERE expires_at <= now()").format(counters)
        self._increments = 0

    @classmethod
    async def open(cls, config: PostgresKVStoreConfig) -> PostgresKVStore:
        address = describe_dsn(config.dsn)
        password = _password(config.dsn)
        table = sql.Identifier(config.table_name)
        create = sql.SQL('CREATE TABLE IF NOT EXISTS {} (key TEXT COLLATE "C" PRIMARY KEY, value TEXT NOT NULL)')
        counters = sql.Identifier(counters_table(config.table_name))
        create_counters = sql.SQL(
            'CREATE TABLE IF NOT EXISTS {} (key TEXT COLLATE "C" PRIMARY KEY, value BIGINT NOT NULL, '
            "expires_at TIMESTAMPTZ)"
        )
        try:
            # A direct connection first: it fails fast with libpq's reason, where a pool would
            # retry in the background until its timeout.
            conn = await psycopg.AsyncConnection.connect(
                config.dsn, autocommit=True, connect_timeout=_CONNECT_TIMEOUT_S
            )
        except psycopg.Error as e:
            raise ConnectionError(f"postgres: cannot connect to {address}: {redact(str(e), password)}") from e
        try:
            async with conn, conn.transaction():
                # Replicas starting together would race on CREATE TABLE IF NOT EXISTS (a unique
                # violation in pg_type); the transaction-scoped advisory lock serialises them.
                await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (config.table_name,))
                await conn.execute(create.format(table))
                await conn.execute(create_counters.format(counters))
                await conn.execute(sql.SQL("DELETE FROM {} WHERE expires_at <= now()").format(counters))
        except psycopg.Error as e:
            reason = redact(str(e), password)
            raise ConnectionError(f"postgres: cannot create table {config.table_name!r} on {address}: {reason}") from e

        pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] = AsyncConnectionPool(
            config.dsn,
            min_size=1,
            max_size=_POOL_MAX_SIZE,
            kwargs={"autocommit": True, "connect_timeout": _CONNECT_TIMEOUT_S},
            open=False,
            name=f"kvstore:{config.table_name}",
            timeout=_CONNECTION_WAIT_S,
        )
        try:
            await pool.open(wait=True, timeout=_CONNECT_TIMEOUT_S * 2)
        except Exception as e:
            await pool.close()
            reason = redact(str(e), password)
            raise ConnectionError(f"postgres: cannot open a pool to {address}: {reason}") from e
        return cls(pool, config.table_name, config.namespace)

    async def get(self, key: str) -> str | None:
        async with self._pool.connection() as conn:
            cur = await conn.execute(self._get, (self._prefix + key,))
            row = await cur.fetchone()
        return None if row is None else str(row[0])

    async def set(self, key: str, value: str) -> None:
        async with self._pool.connection() as conn:
            await conn.execute(self._set, (self._prefix + key, value))

    async def delete(self, key: str) -> None:
        async with self._pool.connection() as conn:
            await conn.execute(self._delete, (self._prefix + key,))

    async def values_in_range(self, start_key: str, end_key: str) -> list[str]:
        if start_key >= end_key:
            return []
        async with self._pool.connection() as conn:
            cur = await conn.execute(self._range, (self._prefix + start_key, self._prefix + end_key))
            rows = await cur.fetchall()
        return [str(row[0]) for row in rows]

    async def keys_with_prefix(self, prefix: str) -> list[str]:
        full = self._prefix + prefix
        upper = prefix_upper_bound(full)
        async with self._pool.connection() as conn:
            if upper is None:
                cur = await conn.execute(self._keys_from, (full,))
            else:
                cur = await conn.execute(self._keys_between, (full, upper))
            rows = await cur.fetchall()
        cut = len(self._prefix)
        return [str(row[0])[cut:] for row in rows]

    async def increment(self, key: str, by: int = 1, ttl_s: float | None = None) -> int:
        async with self._pool.connection() as conn:
            cur = await conn.execute(self._increment, (self._prefix + key, by, ttl_s))
            row = await cur.fetchone()
            self._increments += 1
            if self._increments % PURGE_EVERY == 0:
                await conn.execute(self._purge)
        assert row is not None  # RETURNING always yields the row it wrote
        return int(row[0])

    async def counter(self, key: str) -> int:
        async with self._pool.connection() as conn:
            cur = await conn.execute(self._counter, (self._prefix + key,))
            row = await cur.fetchone()
        return 0 if row is None else int(row[0])

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await self._pool.close()
