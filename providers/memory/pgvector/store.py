"""pgvector store: a table per bank with a `vector(dimension)` column, on Postgres.

An insert is one transaction (delete the replaced documents' rows, insert the new ones). Queries
order by cosine distance. A bank's index kind (its own, else the provider's) decides how:
- `hnsw`: an HNSW index (vector_cosine_ops, m / ef_construction from the settings) answers
  unfiltered queries (`ORDER BY embedding <=> $vector LIMIT k`, the opclass's operator, so the
  planner walks the graph), with `hnsw.ef_search` set per query (`ef_search_for`);
- `auto`: exact scans until this process has seen the bank reach `auto_threshold` rows, then the
  HNSW index is built once (CREATE INDEX IF NOT EXISTS, so replicas agree) and used from then on;
- `exact`: no HNSW index; every query scans (index scans are switched off for it).
Filtered queries always scan exactly, so a selective filter never loses results to the graph.
pgvector inserts a row into an existing HNSW index one at a time, ~16 ms of CPU per row at m 32
(27 rows/s into a 100k bank here, against 473 for COPY then CREATE INDEX): an `auto` bank fills by
COPY and builds its graph once, and rows written to a bank that has its graph are staged beside it
(a table without the index, scanned exactly by every search) and merged into the graph by a
background task (staging.py), so an insert costs a COPY. Past `staging_max_rows` staged rows an
insert waits for the merge, which bounds what the exact scan adds to a search.
pgvector's IVFFlat needs its rows before the index is built, so `ivf` is not offered (400).
Filters are jsonb containment (`metadata @> {"key": value}`), which compares JSON values: 1
matches 1.0, true does not match 1.

An outage (Postgres down or unreachable, a connection cut) is StoreUnavailable, 503, within the
pool's `connection_wait_s`: a request never queues for the pool's default 30 s. The pool reconnects
in the background, so the bank answers again once Postgres is back.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

import numpy as np
import psycopg
from pgvector.psycopg import register_vector_async
from psycopg import sql
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from llama_stack.apis.errors import InvalidRequest, ProviderError, StackError, StoreUnavailable, UpstreamError
from llama_stack.distribution.store.postgres import describe_dsn

from ..common.config import VectorIndexConfig
from ..common.types import Filters, ScoredChunk, StoredChunk, Vectors, require_kind
from .config import DEFAULT_STAGING_MAX_ROWS, PgVectorMemoryConfig
from .staging import BankTables, Merger, bank_tables, create_staging, delete_documents, staged_rows, union_of

log = logging.getLogger(__name__)

_CONNECT_TIMEOUT_S = 5
_COLUMNS = sql.SQL("id, document_id, chunk_index, content, token_count, metadata")
# pgvector walks at most hnsw.ef_search candidates and returns no more than that many rows (0.6 has
# no iterative scan), so ef_search must cover k. On the clustered 100k benchmark its graph (m 32)
# finds recall@10 0.948 at 40 (pgvector's own default), 0.963 at 48, 0.981 at 64 and 0.999 at 128,
# for 5.7, 6.3, 8.1 and 13.6 ms of CPU per query.
_EF_SEARCH_FLOOR = 48
_EF_SEARCH_PER_RESULT = 4
_EF_SEARCH_MAX = 1000  # pgvector's upper bound for hnsw.ef_search


def ef_search_for(settings: VectorIndexConfig, k: int) -> int:
    """hnsw.ef_search for a top-k query: the bank's `hnsw_ef_search` when it was set explicitly
    (raised to k), else 4 candidates per result with a floor of 48. The shared default (128) suits
    FAISS's graph; pgvector reads every candidate through its buffer manager, so a query's cost
    grows about linearly with ef_search and 128 costs twice what 48 does for recall it does not need."""
    if "hnsw_ef_search" in settings.model_fields_set:
        wanted = max(settings.hnsw_ef_search, k)
    else:
        wanted = max(_EF_SEARCH_FLOOR, _EF_SEARCH_PER_RESULT * k)
    return min(_EF_SEARCH_MAX, wanted)


def _chunk(row: tuple[Any, ...]) -> StoredChunk:
    metadata = row[5] if isinstance(row[5], dict) else json.loads(row[5])
    return StoredChunk(row[1], row[2], row[3], row[4], metadata)


class PgVectorStore:
    def __init__(
        self,
        pool: AsyncConnectionPool[Any],
        prefix: str,
        index: VectorIndexConfig,
        address: str,
        staging_max_rows: int = DEFAULT_STAGING_MAX_ROWS,
    ) -> None:
        self.pool = pool
        self.prefix = prefix
        self.default_index = index
        self.address = address
        self.staging_max_rows = staging_max_rows  # 0: rows go into the graph within the insert
        self.banks_table = sql.Identifier(f"{prefix}_banks")
        self.tables: dict[str, BankTables] = {}
        self.merger = Merger(pool, self.tables.get)
        self.indexes: dict[str, VectorIndexConfig] = {}  # each open bank's settings
        self.graphs: dict[str, sql.Identifier] = {}  # the name of each open bank's HNSW index
        self.has_graph: set[str] = set()  # open banks whose HNSW index exists
        self.rows: dict[str, int] = {}  # row counts of open `auto` banks still without their graph

    @classmethod
    async def from_config(cls, config: PgVectorMemoryConfig) -> PgVectorStore:
        return await cls.open(
            config.dsn,
            config.table_prefix,
            config.hnsw,
            config.pool_max_size,
            config.connection_wait_s,
            config.index,
            config.staging_max_rows,
        )

    @classmethod
    async def open(
        cls,
        dsn: str,
        prefix: str,
        hnsw: bool,
        pool_max_size: int,
        connection_wait_s: float = 1.5,
        index: VectorIndexConfig | None = None,
        staging_max_rows: int = DEFAULT_STAGING_MAX_ROWS,
    ) -> PgVectorStore:
        """`index` is the banks' default (the provider's `index`); `hnsw=False` makes it exact."""
        default = index or VectorIndexConfig(kind="hnsw")
        if not hnsw:
            default = default.model_copy(update={"kind": "exact"})
        address = describe_dsn(dsn)
        try:
            conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True, connect_timeout=_CONNECT_TIMEOUT_S)
        except psycopg.Error as e:
            raise ConnectionError(f"pgvector: cannot connect to {address}: {e}") from e
        try:
            async with conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (prefix,))
                await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
                await conn.execute(
                    sql.SQL(
                        "CREATE TABLE IF NOT EXISTS {} (bank_id TEXT PRIMARY KEY, table_name TEXT UNIQUE NOT NULL, "
                        "dimension INTEGER NOT NULL)"
                    ).format(sql.Identifier(f"{prefix}_banks"))
                )
        except psycopg.Error as e:
            raise ConnectionError(
                f"pgvector: cannot set up {address}: {e} (the server needs the pgvector extension installed)"
            ) from e
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            dsn,
            min_size=1,
            max_size=pool_max_size,
            kwargs={"autocommit": True, "connect_timeout": _CONNECT_TIMEOUT_S},
            configure=register_vector_async,
            open=False,
            timeout=connection_wait_s,
            name=f"pgvector:{prefix}",
        )
        try:
            await pool.open(wait=True, timeout=_CONNECT_TIMEOUT_S * 2)
        except Exception as e:
            await pool.close()
            raise ConnectionError(f"pgvector: cannot open a pool to {address}: {e}") from e
        return cls(pool, prefix, default, address, staging_max_rows)

    def _upstream(self, action: str, error: psycopg.Error | PoolTimeout) -> StackError:
        if isinstance(error, psycopg.OperationalError | PoolTimeout):
            reason = "no connection came free" if isinstance(error, PoolTimeout) else str(error).strip()
            return StoreUnavailable(f"pgvector ({self.address}) is unavailable: {action} failed: {reason}; retry later")
        return UpstreamError(f"pgvector ({self.address}): {action} failed: {error}")

    def _tables(self, bank_id: str) -> BankTables:
        tables = self.tables.get(bank_id)
        if tables is None:
            raise ProviderError(f"pgvector bank '{bank_id}' is not open")
        return tables

    def choose_index(self, bank_id: str, index: VectorIndexConfig) -> None:
        require_kind("pgvector", index, ("auto", "exact", "hnsw"))
        self.indexes[bank_id] = index

    def _settings(self, bank_id: str) -> VectorIndexConfig:
        return self.indexes.get(bank_id, self.default_index)

    async def open_bank(self, bank_id: str, dimension: int) -> None:
        name = f"{self.prefix}_{hashlib.sha256(bank_id.encode('utf-8')).hexdigest()[:24]}"
        table = sql.Identifier(name)
        try:
            async with self.pool.connection() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (name,))
                cursor = await conn.execute(
                    sql.SQL("SELECT table_name, dimension FROM {} WHERE bank_id = %s").format(self.banks_table),
                    (bank_id,),
                )
                row = await cursor.fetchone()
                if row is not None and row[1] != dimension:
                    raise InvalidRequest(
                        f"memory bank '{bank_id}' already holds {row[1]}-dimensional vectors and cannot take "
                        f"{dimension}-dimensional ones; unregister it first or use its embedding model"
                    )
                if row is None:
                    await self._create(conn, bank_id, name, table, dimension)
                await create_staging(conn, name, dimension)
                graph = await conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{name}_hnsw",))
                has_graph = bool((await graph.fetchone() or (False,))[0])
                tables = bank_tables(name)
                count = await conn.execute(sql.SQL("SELECT count(*) FROM {}").format(tables.merged))
                rows = int((await count.fetchone() or (0,))[0])
                staged = await staged_rows(conn, tables)
        except (psycopg.Error, PoolTimeout) as e:
            raise self._upstream(f"opening bank '{bank_id}'", e) from e
        self.tables[bank_id] = tables
        self.graphs[bank_id] = sql.Identifier(f"{name}_hnsw")
        self.indexes[bank_id] = self._settings(bank_id)
        self.has_graph.discard(bank_id)
        if has_graph:
            self.has_graph.add(bank_id)
        self.rows[bank_id] = rows + staged
        if staged:
            self.merger.wake(bank_id)  # left staged by a merge that stopped (a restart, a crash)
        await self._graph_if_due(bank_id)
        if bank_id in self.has_graph:
            await self._warn_if_graph_outgrows_buffers(bank_id)

    async def _graph_if_due(self, bank_id: str) -> None:
        """Build the bank's HNSW index when its settings ask for one and it has none yet."""
        settings = self.indexes[bank_id]
        wanted = settings.kind == "hnsw" or (settings.kind == "auto" and self.rows[bank_id] >= settings.auto_threshold)
        if not wanted or bank_id in self.has_graph:
            return
        table, graph = self._tables(bank_id).merged, self.graphs[bank_id]
        statement = sql.SQL(
            "CREATE INDEX IF NOT EXISTS {} ON {} USING hnsw (embedding vector_cosine_ops) "
            "WITH (m = {}, ef_construction = {})"
        ).format(graph, table, sql.Literal(settings.hnsw_m), sql.Literal(settings.hnsw_ef_construction))
        try:
            async with self.pool.connection() as conn:
                await conn.execute(statement)
        except (psycopg.Error, PoolTimeout) as e:
            raise self._upstream(f"indexing bank '{bank_id}'", e) from e
        self.has_graph.add(bank_id)
        await self._warn_if_graph_outgrows_buffers(bank_id)

    async def _warn_if_graph_outgrows_buffers(self, bank_id: str) -> None:
        """A graph larger than shared_buffers is read from the OS page cache page by page on every
        query: at 100k chunks (a 203 MB index) p50 was 9.4 ms with Postgres's default 128MB against
        3.9 ms with 1GB, recall unchanged. Only the operator can raise it, so say so once per open."""
        try:
            async with self.pool.connection() as conn:
                cursor = await conn.execute(
                    "SELECT pg_relation_size(%s), pg_size_bytes(current_setting('shared_buffers'))",
                    (self.graphs[bank_id].as_string(conn),),
                )
                graph_bytes, buffer_bytes = await cursor.fetchone() or (0, 0)
        except (psycopg.Error, PoolTimeout):
            return  # only advice: the bank works without it
        if graph_bytes > buffer_bytes:
            log.warning(
                "pgvector bank '%s': its HNSW index (%d MB) is larger than shared_buffers (%d MB) on %s, so "
                "each query reads index pages from the OS; set shared_buffers above the index size",
                bank_id,
                graph_bytes // 2**20,
                buffer_bytes // 2**20,
                self.address,
            )

    async def _create(self, conn: Any, bank_id: str, name: str, table: sql.Identifier, dimension: int) -> None:
        await conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (id BIGSERIAL PRIMARY KEY, document_id TEXT NOT NULL, "
                "chunk_index INTEGER NOT NULL, content TEXT NOT NULL, token_count INTEGER NOT NULL, "
                "metadata JSONB NOT NULL, embedding vector({}) NOT NULL)"
            ).format(table, sql.Literal(dimension))
        )
        await conn.execute(
            sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} (document_id)").format(sql.Identifier(f"{name}_doc"), table)
        )
        await conn.execute(
            sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} USING gin (metadata jsonb_path_ops)").format(
                sql.Identifier(f"{name}_meta"), table
            )
        )
        await conn.execute(
            sql.SQL("INSERT INTO {} (bank_id, table_name, dimension) VALUES (%s, %s, %s)").format(self.banks_table),
            (bank_id, name, dimension),
        )

    async def drop_bank(self, bank_id: str) -> None:
        await self.merger.stop(bank_id)
        self.tables.pop(bank_id, None)
        self.indexes.pop(bank_id, None)
        self.graphs.pop(bank_id, None)
        self.has_graph.discard(bank_id)
        self.rows.pop(bank_id, None)
        try:
            async with self.pool.connection() as conn, conn.transaction():
                cursor = await conn.execute(
                    sql.SQL("DELETE FROM {} WHERE bank_id = %s RETURNING table_name").format(self.banks_table),
                    (bank_id,),
                )
                row = await cursor.fetchone()
                if row is not None:
                    tables = bank_tables(row[0])
                    await conn.execute(sql.SQL("DROP TABLE IF EXISTS {}, {}").format(tables.staged, tables.merged))
        except (psycopg.Error, PoolTimeout) as e:
            raise self._upstream(f"dropping bank '{bank_id}'", e) from e

    async def replace_documents(
        self, bank_id: str, document_ids: list[str], chunks: list[StoredChunk], vectors: Vectors
    ) -> None:
        tables = self._tables(bank_id)
        staging = self.staging_max_rows > 0 and bank_id in self.has_graph
        target = tables.staged if staging else tables.merged
        columns = "(document_id, chunk_index, content, token_count, metadata, embedding)"
        copy = sql.SQL("COPY {} " + columns + " FROM STDIN (FORMAT BINARY)").format(target)
        try:
            async with self.pool.connection() as conn, conn.transaction():
                deleted = await delete_documents(conn, tables, document_ids)
                async with conn.cursor().copy(copy) as writer:
                    writer.set_types(["text", "int4", "text", "int4", "jsonb", "vector"])
                    for chunk, vector in zip(chunks, vectors, strict=True):
                        await writer.write_row(
                            (chunk.document_id, chunk.chunk_index, chunk.content, chunk.token_count,
                             Jsonb(chunk.metadata), vector)
                        )  # fmt: skip
                staged = await staged_rows(conn, tables) if staging and chunks else 0
        except (psycopg.Error, PoolTimeout) as e:
            raise self._upstream(f"inserting into bank '{bank_id}'", e) from e
        if staged:
            self.merger.wake(bank_id)
            if staged > self.staging_max_rows:
                try:
                    await self.merger.wait_below(bank_id, tables, self.staging_max_rows)
                except (psycopg.Error, PoolTimeout) as e:
                    raise self._upstream(f"merging into bank '{bank_id}'", e) from e
        if bank_id in self.rows:
            self.rows[bank_id] += len(chunks) - deleted
            await self._graph_if_due(bank_id)

    async def search(self, bank_id: str, vector: Vectors, k: int, filters: Filters) -> list[ScoredChunk]:
        rows = await self._ranked(bank_id, vector, k, filters, sql.SQL(""))
        return [ScoredChunk(_chunk(row), float(row[6])) for row in rows]

    async def explain(self, bank_id: str, vector: Vectors, k: int, filters: Filters) -> str:
        """EXPLAIN (ANALYZE, BUFFERS) of the statement `search` runs, under the same settings: shows
        whether the HNSW index answers and how many pages a query reads."""
        rows = await self._ranked(bank_id, vector, k, filters, sql.SQL("EXPLAIN (ANALYZE, BUFFERS) "))
        return "\n".join(str(row[0]) for row in rows)

    async def _ranked(
        self, bank_id: str, vector: Vectors, k: int, filters: Filters, prefix: sql.Composable
    ) -> list[tuple[Any, ...]]:
        """The k nearest rows, nearest first: the k nearest of the graph's table (through the graph)
        and of the staging table (a scan of the few rows not merged yet), in one statement. The
        index's settings are SET LOCAL in the query's own transaction, so a pooled connection never
        carries them to another bank's query."""
        tables = self._tables(bank_id)
        query_vector = np.ascontiguousarray(vector[0], np.float32)  # sent as a binary `vector` parameter
        where = sql.SQL("WHERE metadata @> %(filters)s::jsonb") if filters else sql.SQL("")

        def nearest(table: sql.Identifier) -> sql.Composable:
            return sql.SQL(
                "SELECT {}, embedding <=> %(vector)s AS distance FROM {} {} ORDER BY embedding <=> %(vector)s "
                "LIMIT %(k)s"
            ).format(_COLUMNS, table, where)

        query = sql.SQL("{}SELECT {}, 1 - distance FROM ({}) AS nearest ORDER BY distance LIMIT %(k)s").format(
            prefix, _COLUMNS, union_of(tables, nearest)
        )
        args = {"vector": query_vector, "k": k, "filters": json.dumps(filters)}
        settings = self._settings(bank_id)
        try:
            async with self.pool.connection() as conn, conn.transaction():
                if filters or settings.kind == "exact" or bank_id not in self.has_graph:
                    # filtered: the graph would drop matches past its ef_search candidates
                    await conn.execute("SET LOCAL enable_indexscan = off")
                else:
                    ef_search = sql.Literal(ef_search_for(settings, k))
                    await conn.execute(sql.SQL("SET LOCAL hnsw.ef_search = {}").format(ef_search))
                cursor = await conn.execute(query, args)
                rows: list[tuple[Any, ...]] = await cursor.fetchall()
                return rows
        except (psycopg.Error, PoolTimeout) as e:
            raise self._upstream(f"querying bank '{bank_id}'", e) from e

    async def all_chunks(self, bank_id: str) -> list[StoredChunk]:
        return await self._chunks(bank_id, sql.SQL(""), {})

    async def document_chunks(self, bank_id: str, document_ids: list[str]) -> list[StoredChunk]:
        return await self._chunks(bank_id, sql.SQL("WHERE document_id = ANY(%(ids)s)"), {"ids": document_ids})

    async def _chunks(self, bank_id: str, where: sql.Composable, args: dict[str, Any]) -> list[StoredChunk]:
        """Rows of both tables in insertion order (ids come from one sequence)."""
        tables = self._tables(bank_id)

        def select(table: sql.Identifier) -> sql.Composable:
            return sql.SQL("SELECT {} FROM {} {}").format(_COLUMNS, table, where)

        query = sql.SQL("SELECT {} FROM ({}) AS rows ORDER BY id").format(_COLUMNS, union_of(tables, select))
        try:
            async with self.pool.connection() as conn:
                cursor = await conn.execute(query, args)
                rows = await cursor.fetchall()
        except (psycopg.Error, PoolTimeout) as e:
            raise self._upstream(f"reading bank '{bank_id}'", e) from e
        return [_chunk(row) for row in rows]

    async def close(self) -> None:
        await self.merger.stop()  # a batch in flight rolls back: its rows stay staged for the next open
        await self.pool.close()
