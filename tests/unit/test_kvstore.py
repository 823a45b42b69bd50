"""The kvstore contract, run against every backend on a real server (sqlite file, redis, postgres).

redis and postgres are session-wide servers (tests/servers.py): each test works in its own
namespace so that tests never see each other's keys.
"""

from __future__ import annotations

import asyncio
import socket
import sqlite3
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import closing
from pathlib import Path

import pytest
from pydantic import TypeAdapter, ValidationError

from llama_stack.distribution.store import (
    KVStore,
    KVStoreConfig,
    MissingDependency,
    PostgresKVStoreConfig,
    RedisKVStoreConfig,
    SqliteKVStoreConfig,
    kvstore_from_config,
)

MakeConfig = Callable[[str | None], KVStoreConfig]
OpenStore = Callable[[KVStoreConfig], Awaitable[KVStore]]


@pytest.fixture(params=["sqlite", "redis", "postgres"])
def make_config(request: pytest.FixtureRequest, tmp_path: Path) -> MakeConfig:
    """Configs of one backend that all point at the same database, by namespace."""
    backend = request.param
    if backend == "sqlite":
        db_path = str(tmp_path / "nested" / "dir" / "kv.db")
        return lambda ns: SqliteKVStoreConfig(db_path=db_path, namespace=ns)
    if backend == "redis":
        url: str = request.getfixturevalue("redis_url")
        return lambda ns: RedisKVStoreConfig(url=url, namespace=ns)
    dsn: str = request.getfixturevalue("postgres_dsn")
    return lambda ns: PostgresKVStoreConfig(dsn=dsn, namespace=ns)


@pytest.fixture
async def open_store() -> AsyncIterator[OpenStore]:
    """Opens stores and closes them all at the end of the test."""
    stores: list[KVStore] = []

    async def _open(config: KVStoreConfig) -> KVStore:
        store = await kvstore_from_config(config)
        stores.append(store)
        return store

    yield _open
    for store in stores:
        await store.close()


@pytest.fixture
def namespace() -> str:
    return f"t{uuid.uuid4().hex}"


@pytest.fixture
async def store(make_config: MakeConfig, open_store: OpenStore, namespace: str) -> KVStore:
    return await open_store(make_config(namespace))


async def test_set_get_overwrite_delete(store: KVStore) -> None:
    await store.set("alpha", "1")
    assert await store.get("alpha") == "1"

    await store.set("alpha", "2")
    assert await store.get("alpha") == "2"
    assert await store.keys_with_prefix("alpha") == ["alpha"]

    await store.delete("alpha")
    assert await store.get("alpha") is None
    assert await store.keys_with_prefix("alpha") == []


async def test_missing_key_is_none_and_deleting_it_is_harmless(store: KVStore) -> None:
    assert await store.get("never-set") is None
    await store.delete("never-set")
    assert await store.get("never-set") is None


async def test_empty_string_value_is_not_missing(store: KVStore) -> None:
    await store.set("empty", "")
    assert await store.get("empty") == ""


async def test_values_in_range_is_ordered_by_key_with_exclusive_end(store: KVStore) -> None:
    for key in ["k3", "k10", "k1", "k2", "k4", "j9", "k"]:
        await store.set(key, f"v-{key}")

    # String order: "k1" < "k10" < "k2"; start is included, end is not.
    assert await store.values_in_range("k1", "k3") == ["v-k1", "v-k10", "v-k2"]
    assert await store.values_in_range("k1", "k4") == ["v-k1", "v-k10", "v-k2", "v-k3"]
    assert await store.values_in_range("k", "k1") == ["v-k"]
    assert await store.values_in_range("a", "z") == ["v-j9", "v-k", "v-k1", "v-k10", "v-k2", "v-k3", "v-k4"]
    assert await store.values_in_range("k3", "k3") == []
    assert await store.values_in_range("k4", "k1") == []
    assert await store.values_in_range("x", "z") == []


async def test_key_order_is_python_string_order(store: KVStore) -> None:
    # Upper case before lower case (not a locale's order), BMP before astral code points
    # (not UTF-16's order).
    keys = ["b", "B", "a", "ab", "Z", "é", "\uffff", "😀", "中文", "a b", "a-b"]
    for key in reversed(keys):
        await store.set(key, key)

    assert await store.values_in_range("", "\U0010ffff") == sorted(keys)
    assert await store.keys_with_prefix("") == sorted(keys)


async def test_keys_with_prefix(store: KVStore) -> None:
    for key in ["user:2", "user:1", "users", "use", "user", "50%_x", "50ab", "50%", "other"]:
        await store.set(key, "x")

    assert await store.keys_with_prefix("user:") == ["user:1", "user:2"]
    assert await store.keys_with_prefix("user") == ["user", "user:1", "user:2", "users"]
    # LIKE/GLOB wildcards in a prefix are plain characters.
    assert await store.keys_with_prefix("50%_") == ["50%_x"]
    assert await store.keys_with_prefix("50%") == ["50%", "50%_x"]
    assert await store.keys_with_prefix("nope") == []
    assert await store.keys_with_prefix("") == sorted(
        ["user:2", "user:1", "users", "use", "user", "50%_x", "50ab", "50%", "other"]
    )


async def test_keys_with_prefix_ending_in_the_last_code_point(store: KVStore) -> None:
    last = "\U0010ffff"
    for key in ["a", f"a{last}", f"a{last}z", f"a{last}{last}", "b", "a\U0010fffe"]:
        await store.set(key, "x")

    assert await store.keys_with_prefix(f"a{last}") == [f"a{last}", f"a{last}z", f"a{last}{last}"]
    assert await store.keys_with_prefix("a") == [
        "a",
        "a\U0010fffe",
        f"a{last}",
        f"a{last}z",
        f"a{last}{last}",
    ]


async def test_keys_with_prefix_ending_before_the_surrogates(store: KVStore) -> None:
    # U+D7FF is followed by the surrogates, which no stored (UTF-8) key can hold.
    for key in ["\ud7ff", "\ud7ffz", "\ue000", "\ud7fe"]:
        await store.set(key, "x")

    assert await store.keys_with_prefix("\ud7ff") == ["\ud7ff", "\ud7ffz"]


async def test_namespaces_isolate_stores_sharing_a_database(make_config: MakeConfig, open_store: OpenStore) -> None:
    ns1, ns2 = f"a{uuid.uuid4().hex}", f"b{uuid.uuid4().hex}"
    one = await open_store(make_config(ns1))
    two = await open_store(make_config(ns2))

    await one.set("k", "from-one")
    await two.set("k", "from-two")
    await one.set("only-one", "1")

    assert await one.get("k") == "from-one"
    assert await two.get("k") == "from-two"
    assert await two.get("only-one") is None
    assert await one.keys_with_prefix("") == ["k", "only-one"]
    assert await two.keys_with_prefix("") == ["k"]
    assert await one.values_in_range("", "z") == ["from-one", "1"]
    assert await two.values_in_range("", "z") == ["from-two"]

    await one.delete("k")
    assert await one.get("k") is None
    assert await two.get("k") == "from-two"

    # A store without a namespace sees the whole database, namespaced keys included.
    whole = await open_store(make_config(None))
    assert await whole.get(f"{ns2}:k") == "from-two"
    assert await whole.keys_with_prefix(f"{ns1}:") == [f"{ns1}:only-one"]


async def test_data_survives_close_and_reopen(make_config: MakeConfig, open_store: OpenStore, namespace: str) -> None:
    first = await kvstore_from_config(make_config(namespace))
    await first.set("durable", "yes")
    await first.set("gone", "soon")
    await first.delete("gone")
    await first.close()
    await first.close()  # closing twice is harmless

    reopened = await open_store(make_config(namespace))
    assert await reopened.get("durable") == "yes"
    assert await reopened.get("gone") is None
    assert await reopened.keys_with_prefix("") == ["durable"]


async def test_unicode_and_large_values(store: KVStore) -> None:
    key = "clé-🔑-鍵"
    value = "ünïcödé — 中文 — 😀 — \u200b — Ω\n"
    await store.set(key, value)
    assert await store.get(key) == value
    assert await store.keys_with_prefix("clé") == [key]

    pattern = "0123456789abcdef😀é"
    large = (pattern * (1_000_000 // len(pattern) + 1))[:1_000_000]
    await store.set("large", large)
    got = await store.get("large")
    assert got is not None
    assert len(got) == 1_000_000
    assert got == large
    assert await store.values_in_range("large", "largf") == [large]


async def test_concurrent_sets_all_land(store: KVStore) -> None:
    await asyncio.gather(*(store.set(f"task-{i:02d}", f"value-{i}") for i in range(50)))

    assert await store.keys_with_prefix("task-") == [f"task-{i:02d}" for i in range(50)]
    values = await asyncio.gather(*(store.get(f"task-{i:02d}") for i in range(50)))
    assert values == [f"value-{i}" for i in range(50)]


async def test_sqlite_creates_parent_folders_and_uses_wal(tmp_path: Path, open_store: OpenStore) -> None:
    db_path = tmp_path / "a" / "b" / "kv.db"
    store = await open_store(SqliteKVStoreConfig(db_path=str(db_path)))
    await store.set("k", "v")

    assert db_path.is_file()
    with closing(sqlite3.connect(db_path)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT key, value FROM kvstore").fetchall() == [("k", "v")]


def test_config_is_chosen_by_type() -> None:
    adapter: TypeAdapter[KVStoreConfig] = TypeAdapter(KVStoreConfig)

    sqlite_cfg = adapter.validate_python({"type": "sqlite", "db_path": "/tmp/x.db"})
    assert isinstance(sqlite_cfg, SqliteKVStoreConfig)
    assert sqlite_cfg.namespace is None

    redis_cfg = adapter.validate_python({"type": "redis", "namespace": "agents"})
    assert isinstance(redis_cfg, RedisKVStoreConfig)
    assert redis_cfg.url == "redis://localhost:6379/0"

    pg_cfg = adapter.validate_python({"type": "postgres", "dsn": "postgresql://h/db"})
    assert isinstance(pg_cfg, PostgresKVStoreConfig)
    assert pg_cfg.table_name == "llamastack_kvstore"

    with pytest.raises(ValidationError):
        adapter.validate_python({"type": "mongo"})
    with pytest.raises(ValidationError):  # would overlap the keys of namespace "a"
        adapter.validate_python({"type": "sqlite", "db_path": "x.db", "namespace": "a:b"})
    with pytest.raises(ValidationError):  # not an SQL identifier
        adapter.validate_python({"type": "postgres", "dsn": "postgresql://h/db", "table_name": "x; drop"})


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_redis_connection_failure_names_address_not_password() -> None:
    port = _closed_port()
    with pytest.raises(ConnectionError) as info:
        await kvstore_from_config(RedisKVStoreConfig(url=f"redis://admin:s3cr3tpw@127.0.0.1:{port}/0"))
    message = str(info.value)
    assert "redis" in message
    assert f"127.0.0.1:{port}" in message
    assert "s3cr3tpw" not in message


async def test_postgres_connection_failure_names_address_not_password() -> None:
    port = _closed_port()
    with pytest.raises(ConnectionError) as info:
        await kvstore_from_config(PostgresKVStoreConfig(dsn=f"postgresql://admin:s3cr3tpw@127.0.0.1:{port}/kv"))
    message = str(info.value)
    assert "postgres" in message
    assert f"127.0.0.1:{port}/kv" in message
    assert "s3cr3tpw" not in message


async def test_postgres_refusal_names_database_not_password(postgres_dsn: str) -> None:
    # pgserver trusts every local user (the password is ignored): a missing database is refused.
    bad = postgres_dsn.replace("postgresql://postgres:@/postgres", "postgresql://postgres:s3cr3tpw@/no_such_db")
    assert bad != postgres_dsn
    with pytest.raises(ConnectionError) as info:
        await kvstore_from_config(PostgresKVStoreConfig(dsn=bad))
    assert "no_such_db" in str(info.value)
    assert "s3cr3tpw" not in str(info.value)


async def test_sqlite_unopenable_path_raises_connection_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ConnectionError) as info:
        await kvstore_from_config(SqliteKVStoreConfig(db_path=str(blocker / "kv.db")))
    assert "sqlite" in str(info.value)
    assert str(blocker / "kv.db") in str(info.value)


@pytest.mark.parametrize(
    ("config", "hidden_modules", "extra"),
    [
        (RedisKVStoreConfig(url="redis://127.0.0.1:1/0"), ["redis", "redis.asyncio"], "redis"),
        (PostgresKVStoreConfig(dsn="postgresql://127.0.0.1:1/x"), ["psycopg_pool"], "postgres"),
        (PostgresKVStoreConfig(dsn="postgresql://127.0.0.1:1/x"), ["psycopg"], "postgres"),
    ],
)
async def test_missing_package_raises_missing_dependency(
    monkeypatch: pytest.MonkeyPatch, config: KVStoreConfig, hidden_modules: list[str], extra: str
) -> None:
    for module in hidden_modules:
        monkeypatch.setitem(sys.modules, module, None)  # `import module` now fails, as if absent
    with pytest.raises(MissingDependency) as info:
        await kvstore_from_config(config)
    assert info.value.package_extra == extra
    assert info.value.pip_command == f"pip install 'llamastack-lite[{extra}]'"
    assert info.value.pip_command in str(info.value)


async def test_postgres_key_column_collates_by_code_point(postgres_dsn: str, open_store: OpenStore) -> None:
    # The test server's locale is C.UTF-8, where any collation orders like Python; an operator's
    # en_US database would not ("a" < "B"), hence the column's own "C" collation.
    import psycopg

    table = f"kv_{uuid.uuid4().hex}"
    await open_store(PostgresKVStoreConfig(dsn=postgres_dsn, table_name=table))
    async with await psycopg.AsyncConnection.connect(postgres_dsn) as conn:
        cur = await conn.execute(
            "SELECT collation_name FROM information_schema.columns WHERE table_name = %s AND column_name = 'key'",
            (table,),
        )
        assert await cur.fetchall() == [("C",)]


async def test_postgres_tables_are_separate_stores(postgres_dsn: str, open_store: OpenStore) -> None:
    one = await open_store(PostgresKVStoreConfig(dsn=postgres_dsn, table_name=f"kv_{uuid.uuid4().hex}"))
    two = await open_store(PostgresKVStoreConfig(dsn=postgres_dsn, table_name=f"kv_{uuid.uuid4().hex}"))
    await one.set("k", "in-one")
    assert await two.get("k") is None
    assert await one.get("k") == "in-one"


# Counters: the quotas count requests and tokens with them, across replicas.


async def test_increment_counts_from_zero_apart_from_values(store: KVStore) -> None:
    assert await store.increment("hits") == 1
    assert await store.increment("hits", 5) == 6
    assert await store.increment("hits", -2) == 4
    assert await store.counter("hits") == 4
    assert await store.counter("never-counted") == 0
    assert await store.get("hits") is None
    assert await store.keys_with_prefix("") == []
    await store.set("hits", "a value")
    assert await store.counter("hits") == 4


async def test_counters_are_namespaced_and_durable(
    make_config: MakeConfig, open_store: OpenStore, namespace: str
) -> None:
    one = await open_store(make_config(f"{namespace}a"))
    two = await open_store(make_config(f"{namespace}b"))
    await one.increment("shared-name", 3, ttl_s=60)
    assert await two.increment("shared-name") == 1
    await one.close()
    assert await (await open_store(make_config(f"{namespace}a"))).counter("shared-name") == 3


async def test_concurrent_increments_from_two_connections_all_count(
    make_config: MakeConfig, open_store: OpenStore, namespace: str
) -> None:
    one = await open_store(make_config(namespace))
    two = await open_store(make_config(namespace))
    results = await asyncio.gather(*(store.increment("n", 1, ttl_s=60) for store in [one, two] * 50))
    assert sorted(results) == list(range(1, 101))
    assert await one.counter("n") == 100


async def test_counter_expires_after_its_ttl_and_later_increments_do_not_extend_it(store: KVStore) -> None:
    assert await store.increment("window", 1, ttl_s=0.6) == 1
    await asyncio.sleep(0.3)
    assert await store.increment("window", 1, ttl_s=60) == 2  # the first expiry still holds
    await asyncio.sleep(0.5)
    assert await store.counter("window") == 0  # expired
    assert await store.increment("window", 1, ttl_s=60) == 1  # and started again


async def test_postgres_counters_table_fits_a_long_table_name(postgres_dsn: str, open_store: OpenStore) -> None:
    long_name = f"kv_{uuid.uuid4().hex}" + "x" * 27  # 62 characters: <name>_counters would be cut
    store = await open_store(PostgresKVStoreConfig(dsn=postgres_dsn, table_name=long_name))
    assert await store.increment("k", 2) == 2
