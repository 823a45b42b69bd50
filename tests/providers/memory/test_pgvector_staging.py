"""pgvector banks with an HNSW graph stage new rows and merge them into the graph in the background:
rows are found as soon as their insert returns, before and after their merge; a merge cut off (a
crash, a restart) loses nothing and duplicates nothing; deleted documents are gone whether their
rows were staged, merged, or being merged; an insert waits once too many rows are staged.

A test holds a bank's merge the way a second process merging it would (its advisory lock), which
keeps rows staged for as long as the test needs."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import psycopg
import pytest

from llama_stack.providers.memory.common.config import VectorIndexConfig
from llama_stack.providers.memory.common.types import StoredChunk, Vectors, normalise
from llama_stack.providers.memory.pgvector import PgVectorMemoryConfig, staging
from llama_stack.providers.memory.pgvector.store import PgVectorStore

DIMENSION = 32
BANK = "bank"


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(staging, "RETRY_S", 0.05)


def clustered(rows: int, seed: int = 0) -> Vectors:
    centres = np.random.default_rng(0).normal(size=(40, DIMENSION))
    rng = np.random.default_rng(seed)
    points = centres[rng.integers(0, 40, rows)] + 0.4 * rng.normal(size=(rows, DIMENSION))
    return normalise(points.astype(np.float32))


async def write(store: PgVectorStore, document: str, vectors: Vectors) -> None:
    chunks = [StoredChunk(document, i, f"{document}/{i}", 1, {}) for i in range(len(vectors))]
    await store.replace_documents(BANK, [document], chunks, vectors)


async def delete(store: PgVectorStore, document: str) -> None:
    await store.replace_documents(BANK, [document], [], np.zeros((0, DIMENSION), np.float32))


async def nearest(store: PgVectorStore, vector: Vectors, k: int = 10) -> list[str]:
    return [hit.chunk.content for hit in await store.search(BANK, vector[None, :], k, {})]


async def contents(store: PgVectorStore) -> list[str]:
    return [chunk.content for chunk in await store.all_chunks(BANK)]


async def staged(store: PgVectorStore) -> int:
    async with store.pool.connection() as conn:
        count: int = await staging.staged_rows(conn, store.tables[BANK])
    return count


async def merged(store: PgVectorStore) -> None:
    """Until nothing is staged (the merge gives up a held lock only by retrying)."""
    for _ in range(400):
        if await staged(store) == 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("staged rows were never merged")


@pytest.fixture
async def prefix() -> str:
    return f"stg_{uuid.uuid4().hex[:12]}"


async def open_store(dsn: str, prefix: str, **options: Any) -> PgVectorStore:
    store = await PgVectorStore.open(dsn, prefix, True, 4, index=VectorIndexConfig(kind="hnsw"), **options)
    await store.open_bank(BANK, DIMENSION)
    return store


@pytest.fixture
async def store(postgres_dsn: str, prefix: str) -> AsyncIterator[PgVectorStore]:
    opened = await open_store(postgres_dsn, prefix)
    yield opened
    await opened.drop_bank(BANK)
    await opened.close()


class MergeHeld:
    """Another process's merge of the bank, as far as this process can tell: its advisory lock."""

    def __init__(self, dsn: str, store: PgVectorStore) -> None:
        self.dsn, self.key = dsn, store.tables[BANK].lock_key
        self.conn: psycopg.AsyncConnection[Any] | None = None

    async def __aenter__(self) -> MergeHeld:
        self.conn = await psycopg.AsyncConnection.connect(self.dsn, autocommit=True)
        await self.conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (self.key,))
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.conn is not None
        await self.conn.close()  # the session lock goes with its connection


async def test_rows_added_to_a_built_graph_are_found_at_once_and_after_their_merge(
    postgres_dsn: str, store: PgVectorStore
) -> None:
    vectors = clustered(400)
    await write(store, "first", vectors[:200])
    await merged(store)
    async with MergeHeld(postgres_dsn, store):
        await write(store, "second", vectors[200:])
        assert await staged(store) == 200
        for i in (200, 250, 399):  # a staged row is its own nearest neighbour straight away
            assert (await nearest(store, vectors[i], k=1)) == [f"second/{i - 200}"]
    await merged(store)
    for i in (0, 200, 399):
        assert (await nearest(store, vectors[i], k=1))[0] == (f"first/{i}" if i < 200 else f"second/{i - 200}")
    assert sorted(await contents(store)) == sorted(
        [f"first/{i}" for i in range(200)] + [f"second/{i}" for i in range(200)]
    )


async def test_search_unions_the_graph_and_the_staged_rows_into_one_ranking(
    postgres_dsn: str, store: PgVectorStore
) -> None:
    vectors, queries = clustered(600), clustered(20, seed=1)
    await write(store, "graph", vectors[:300])
    await merged(store)
    async with MergeHeld(postgres_dsn, store):
        await write(store, "staged", vectors[300:])
        found = [await nearest(store, query) for query in queries]
    exact = []
    for query in queries:
        order = np.argsort(-(vectors @ query))[:10]
        exact.append([f"graph/{i}" if i < 300 else f"staged/{i - 300}" for i in order])
    hits = sum(len(set(f) & set(e)) for f, e in zip(found, exact, strict=True))
    assert hits / (10 * len(queries)) >= 0.95
    assert all(len(f) == len(set(f)) == 10 for f in found)


async def test_a_merge_cut_off_before_its_commit_loses_and_duplicates_nothing(postgres_dsn: str, prefix: str) -> None:
    store = await open_store(postgres_dsn, prefix)
    vectors = clustered(300)
    async with MergeHeld(postgres_dsn, store):
        await write(store, "doc", vectors)
        await store.merger.stop()  # this process's merge waits no more: the test's batch is the only one
    # A merge batch moved 100 rows and its process died before the commit.
    crashed = await psycopg.AsyncConnection.connect(postgres_dsn)
    async with crashed.transaction(force_rollback=True):
        assert await staging.move_batch(crashed, store.tables[BANK]) == 100
        assert sorted(await contents(store)) == sorted(f"doc/{i}" for i in range(300))
        async with await psycopg.AsyncConnection.connect(postgres_dsn, autocommit=True) as admin:
            await admin.execute("SELECT pg_terminate_backend(%s)", (crashed.info.backend_pid,))
        with pytest.raises(psycopg.OperationalError):
            await crashed.execute("SELECT 1")
    await store.close()  # the process restarts
    reopened = await open_store(postgres_dsn, prefix)
    try:
        assert sorted(await contents(reopened)) == sorted(f"doc/{i}" for i in range(300))
        await merged(reopened)  # reopening resumed the merge
        assert sorted(await contents(reopened)) == sorted(f"doc/{i}" for i in range(300))
        for i in (0, 150, 299):
            assert (await nearest(reopened, vectors[i], k=1)) == [f"doc/{i}"]
    finally:
        await reopened.drop_bank(BANK)
        await reopened.close()


async def test_a_store_closed_mid_merge_leaves_its_rows_staged_for_the_next_open(
    postgres_dsn: str, prefix: str
) -> None:
    first = await open_store(postgres_dsn, prefix)
    vectors = clustered(500)
    await write(first, "doc", vectors)
    await first.close()  # probably mid-merge: whatever it moved is committed, the rest staged
    second = await open_store(postgres_dsn, prefix)
    try:
        assert sorted(await contents(second)) == sorted(f"doc/{i}" for i in range(500))
        await merged(second)
        assert (await nearest(second, vectors[321], k=1)) == ["doc/321"]
    finally:
        await second.drop_bank(BANK)
        await second.close()


async def test_deleted_documents_are_gone_whether_staged_or_merged(postgres_dsn: str, store: PgVectorStore) -> None:
    vectors = clustered(300)
    await write(store, "merged", vectors[:100])
    await merged(store)
    async with MergeHeld(postgres_dsn, store):
        await write(store, "staged", vectors[100:200])
        await write(store, "kept", vectors[200:])
        await delete(store, "staged")
        await delete(store, "merged")
        assert await contents(store) == [f"kept/{i}" for i in range(100)]
        assert (await nearest(store, vectors[150], k=1))[0].startswith("kept/")
        await write(store, "kept", vectors[:50])  # replaced while staged
        assert sorted(await contents(store)) == sorted(f"kept/{i}" for i in range(50))
    await merged(store)
    assert sorted(await contents(store)) == sorted(f"kept/{i}" for i in range(50))
    assert (await nearest(store, vectors[10], k=1)) == ["kept/10"]


async def test_a_document_deleted_while_its_rows_are_being_merged_stays_deleted(
    postgres_dsn: str, store: PgVectorStore
) -> None:
    async with MergeHeld(postgres_dsn, store):
        await write(store, "doc", clustered(50))
        await store.merger.stop()  # this process's merge waits no more: the test's batch is the only one
    async with await psycopg.AsyncConnection.connect(postgres_dsn) as merging:
        # Another process's merge batch has moved the rows and not committed yet ...
        assert await staging.move_batch(merging, store.tables[BANK]) == 50
        deleting = asyncio.create_task(delete(store, "doc"))
        await asyncio.sleep(0.3)
        assert not deleting.done()  # ... so the delete waits for it
        await merging.commit()
        await asyncio.wait_for(deleting, 10)
    assert await contents(store) == []
    assert await nearest(store, clustered(1, seed=3)[0]) == []


async def test_an_insert_waits_for_the_merge_once_too_many_rows_are_staged(postgres_dsn: str, prefix: str) -> None:
    store = await open_store(postgres_dsn, prefix, staging_max_rows=100)
    try:
        vectors = clustered(250)
        async with MergeHeld(postgres_dsn, store):
            await write(store, "a", vectors[:100])  # at the limit: returns
            late = asyncio.create_task(write(store, "b", vectors[100:]))
            await asyncio.sleep(0.3)
            assert not late.done()
        await asyncio.wait_for(late, 30)
        assert await staged(store) <= 100
        assert len(await contents(store)) == 250
    finally:
        await store.drop_bank(BANK)
        await store.close()


async def test_without_staging_rows_go_into_the_graph_within_the_insert(postgres_dsn: str, prefix: str) -> None:
    store = await open_store(postgres_dsn, prefix, staging_max_rows=0)
    try:
        vectors = clustered(100)
        await write(store, "doc", vectors)
        assert await staged(store) == 0
        assert (await nearest(store, vectors[7], k=1)) == ["doc/7"]
    finally:
        await store.drop_bank(BANK)
        await store.close()


@pytest.mark.parametrize("staging_max_rows, staged_after_insert", [(1000, 100), (0, 0)])
async def test_the_providers_config_sets_the_staging_limit(
    postgres_dsn: str, prefix: str, staging_max_rows: int, staged_after_insert: int
) -> None:
    config = PgVectorMemoryConfig(
        dsn=postgres_dsn,
        table_prefix=prefix,
        index=VectorIndexConfig(kind="hnsw"),
        staging_max_rows=staging_max_rows,
    )
    store = await PgVectorStore.from_config(config)
    await store.open_bank(BANK, DIMENSION)
    try:
        vectors = clustered(100)
        async with MergeHeld(postgres_dsn, store):
            await write(store, "doc", vectors)
            assert await staged(store) == staged_after_insert
            assert (await nearest(store, vectors[7], k=1)) == ["doc/7"]
    finally:
        await store.drop_bank(BANK)
        await store.close()
