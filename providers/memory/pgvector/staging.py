"""Staging of rows bound for a bank's HNSW graph, and their merge into it in the background.

pgvector 0.6 adds a row to an existing HNSW index one at a time, inside the INSERT that writes the
row: ~16 ms of CPU per row at m 32 (27 rows/s into a 100k bank), where a COPY alone takes ~0.1 ms.
So a bank with a graph takes its new rows into a staging table beside it (`<table>_s`: the same
columns, no vector index), which searches scan exactly and union with the graph's answer, and a
task of the store moves them into the graph in batches after the insert has returned.

Why every row is found exactly once, whatever crashes:
- a batch moves in one statement (DELETE ... RETURNING from staging feeding the INSERT into the
  graph's table), so a crash before its commit leaves the rows staged and a commit leaves them
  merged; a row keeps its id (both tables draw from the bank's one sequence);
- every read (search, all_chunks, document_chunks) is one statement over both tables, so it sees
  one snapshot: before or after a batch's commit, never between;
- a writer deletes a document's staged rows before its merged ones (see `delete_documents`);
- one merger per bank across processes: a batch holds an advisory lock on the staging table, so a
  second process (a replica) skips the bank while another merges it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool, PoolTimeout

log = logging.getLogger(__name__)

STAGED_SUFFIX = "_s"
# A batch is one transaction of ~16 ms per row: 100 rows keep it near 2 s, the longest a writer
# deleting one of those rows waits, while a commit per batch costs nothing next to the inserts.
MERGE_BATCH = 100
RETRY_S = 1.0  # another process holds the bank's merge, or a writer holds its rows: look again then
FIELDS = ("document_id", "chunk_index", "content", "token_count", "metadata", "embedding")


@dataclass(frozen=True)
class BankTables:
    """A bank's two tables: `merged` carries the HNSW index, `staged` the rows not yet in it."""

    merged: sql.Identifier
    staged: sql.Identifier
    lock_key: str  # the advisory lock a merge batch of this bank holds


def bank_tables(name: str) -> BankTables:
    return BankTables(sql.Identifier(name), sql.Identifier(name + STAGED_SUFFIX), name + STAGED_SUFFIX)


async def create_staging(conn: psycopg.AsyncConnection[Any], name: str, dimension: int) -> None:
    """The staging table of bank table `name` (also for banks created before staging existed); its
    ids come from the bank table's sequence, so a row keeps its id when it moves."""
    tables = bank_tables(name)
    cursor = await conn.execute("SELECT pg_get_serial_sequence(%s, 'id')", (tables.merged.as_string(conn),))
    sequence = (await cursor.fetchone() or (None,))[0]
    await conn.execute(
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (id BIGINT PRIMARY KEY DEFAULT nextval({}::regclass), "
            "document_id TEXT NOT NULL, chunk_index INTEGER NOT NULL, content TEXT NOT NULL, "
            "token_count INTEGER NOT NULL, metadata JSONB NOT NULL, embedding vector({}) NOT NULL)"
        ).format(tables.staged, sql.Literal(sequence), sql.Literal(dimension))
    )
    await conn.execute(
        sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} (document_id)").format(
            sql.Identifier(name + STAGED_SUFFIX + "d"), tables.staged
        )
    )


async def delete_documents(conn: psycopg.AsyncConnection[Any], tables: BankTables, document_ids: list[str]) -> int:
    """Delete the documents' rows from both tables, staged rows first: a merge batch moving one of
    them holds it until the batch commits, this DELETE waits for that and then skips the row, and
    the next statement (READ COMMITTED: a new snapshot) finds the row in the graph's table. In the
    other order the moved row would be in neither snapshot and survive its document's deletion."""
    deleted = 0
    for table in (tables.staged, tables.merged):
        cursor = await conn.execute(
            sql.SQL("DELETE FROM {} WHERE document_id = ANY(%s)").format(table), (document_ids,)
        )
        deleted += max(cursor.rowcount, 0)
    return deleted


def union_of(tables: BankTables, select: Callable[[sql.Identifier], sql.Composable]) -> sql.Composable:
    """`select` over both tables as one statement's UNION ALL: one snapshot, each row once."""
    return sql.SQL("({}) UNION ALL ({})").format(select(tables.merged), select(tables.staged))


async def move_batch(conn: psycopg.AsyncConnection[Any], tables: BankTables, rows: int = MERGE_BATCH) -> int | None:
    """Move up to `rows` of the oldest staged rows into the graph's table, in the caller's
    transaction; None when another process is merging this bank. Rows a writer is deleting are
    skipped (SKIP LOCKED), so a merge never waits for a writer."""
    locked = await conn.execute("SELECT pg_try_advisory_xact_lock(hashtext(%s))", (tables.lock_key,))
    if not (await locked.fetchone() or (False,))[0]:
        return None
    fields = sql.SQL(", ").join(sql.Identifier(field) for field in ("id", *FIELDS))
    cursor = await conn.execute(
        sql.SQL(
            "WITH batch AS (SELECT id FROM {staged} ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED), "
            "moved AS (DELETE FROM {staged} AS s USING batch WHERE s.id = batch.id RETURNING s.*) "
            "INSERT INTO {merged} ({fields}) SELECT {fields} FROM moved"
        ).format(staged=tables.staged, merged=tables.merged, fields=fields),
        (rows,),
    )
    return max(cursor.rowcount, 0)


async def staged_rows(conn: psycopg.AsyncConnection[Any], tables: BankTables) -> int:
    cursor = await conn.execute(sql.SQL("SELECT count(*) FROM {}").format(tables.staged))
    return int((await cursor.fetchone() or (0,))[0])


class Merger:
    """One background task per bank with staged rows, moving them into its graph batch by batch
    until none is left. `tables_of` answers None once the bank is no longer open."""

    def __init__(self, pool: AsyncConnectionPool[Any], tables_of: Callable[[str], BankTables | None]) -> None:
        self.pool = pool
        self.tables_of = tables_of
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.woken: set[str] = set()  # banks written since their task last found staging empty
        self.merged = 0  # rows this process moved into graphs (for benchmarks and logs)

    def wake(self, bank_id: str) -> None:
        self.woken.add(bank_id)
        task = self.tasks.get(bank_id)
        if task is None or task.done():
            self.tasks[bank_id] = asyncio.create_task(self._drain(bank_id), name=f"pgvector merge {bank_id}")

    async def _drain(self, bank_id: str) -> None:
        while bank_id in self.woken:
            self.woken.discard(bank_id)
            tables = self.tables_of(bank_id)
            if tables is None:
                return
            try:
                await self._drain_once(tables)
            except (psycopg.Error, PoolTimeout) as e:
                # The rows stay staged and searchable; the next write or open of the bank retries.
                log.warning("pgvector bank '%s': merging staged rows into its graph failed: %s", bank_id, e)
                return

    async def _drain_once(self, tables: BankTables) -> None:
        while True:
            async with self.pool.connection() as conn:
                async with conn.transaction():
                    moved = await move_batch(conn, tables)
                if moved:
                    self.merged += moved
                    continue
                left = await staged_rows(conn, tables)
                if left == 0:
                    # Each batch leaves dead rows that every search's scan of staging would read.
                    await conn.execute(sql.SQL("VACUUM {}").format(tables.staged))
                    return
            await asyncio.sleep(RETRY_S)  # another process merges, or a writer holds the rows

    async def wait_below(self, bank_id: str, tables: BankTables, limit: int) -> None:
        """Return once at most `limit` rows are staged (whichever process merges them)."""
        while True:
            self.wake(bank_id)  # again each time: a merge that failed (Postgres restarting) is retried
            async with self.pool.connection() as conn:
                if await staged_rows(conn, tables) <= limit:
                    return
            await asyncio.sleep(0.1)

    async def idle(self, bank_id: str) -> None:
        """Wait for this process's merge of the bank to finish (tests and benchmarks)."""
        task = self.tasks.get(bank_id)
        if task is not None:
            await task

    async def stop(self, bank_id: str | None = None) -> None:
        """Cancel the merge of one bank (or all): its batch in flight rolls back, its rows stay staged."""
        for key in [bank_id] if bank_id is not None else list(self.tasks):
            task = self.tasks.pop(key, None)
            self.woken.discard(key)
            if task is not None and not task.done():
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
