"""sqlite-vec vector store: one SQLite file; chunks in a table, each bank's vectors in a vec0
virtual table (cosine distance) whose rowids are the chunks' ids.

An insert is one transaction (BEGIN IMMEDIATE ... COMMIT), so it lands whole or not at all.
Metadata filters become a `rowid IN (...)` constraint of the KNN query, matched with json_each
so any key works and JSON types are respected (true is not 1).

sqlite-vec (0.1) has no approximate index: vec0 always scans every vector of the bank, so a bank
may choose `exact` or `auto` (which stays exact here); `hnsw` and `ivf` answer 400.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

from llama_stack.apis.errors import InvalidRequest, ProviderError

from ..common.config import VectorIndexConfig
from ..common.types import Filters, ScoredChunk, StoredChunk, Vectors, require_kind

_SCHEMA = """
CREATE TABLE IF NOT EXISTS memory_banks (
    id INTEGER PRIMARY KEY, bank_id TEXT UNIQUE NOT NULL, dimension INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS memory_chunks (
    id INTEGER PRIMARY KEY, bank INTEGER NOT NULL, document_id TEXT NOT NULL, chunk_index INTEGER NOT NULL,
    content TEXT NOT NULL, token_count INTEGER NOT NULL, metadata TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS memory_chunks_document ON memory_chunks (bank, document_id);
"""
_CHUNK_COLUMNS = "id, document_id, chunk_index, content, token_count, metadata"


def sqlite_with_extensions() -> ModuleType:
    """The sqlite3 module, or pysqlite3 where Python's own sqlite3 cannot load extensions."""
    import sqlite3

    if hasattr(sqlite3.Connection, "enable_load_extension"):
        return sqlite3
    try:
        return importlib.import_module("pysqlite3.dbapi2")
    except ImportError as e:
        raise ProviderError(
            "this Python's sqlite3 cannot load extensions, which sqlite-vec needs; "
            "run: pip install pysqlite3-binary (or use a Python built with loadable SQLite extensions)"
        ) from e


def _row_chunk(row: tuple[Any, ...]) -> StoredChunk:
    return StoredChunk(row[1], row[2], row[3], row[4], json.loads(row[5]))


def _filter_clause(filters: Filters) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    args: list[Any] = []
    for key, value in filters.items():
        if isinstance(value, bool):
            clauses.append("EXISTS (SELECT 1 FROM json_each(c.metadata) WHERE key = ? AND type = ?)")
            args += [key, "true" if value else "false"]
        elif isinstance(value, int | float):
            clauses.append(
                "EXISTS (SELECT 1 FROM json_each(c.metadata) WHERE key = ? AND type IN ('integer', 'real') "
                "AND value = ?)"
            )
            args += [key, value]
        else:
            clauses.append("EXISTS (SELECT 1 FROM json_each(c.metadata) WHERE key = ? AND type = 'text' AND value = ?)")
            args += [key, value]
    return " AND ".join(clauses), args


class SqliteVecStore:
    def __init__(self, db_file: str) -> None:
        db_path = Path(db_file).expanduser()
        self.db_path = db_path
        self.lock = threading.Lock()
        self.tables: dict[str, tuple[int, int]] = {}  # bank id -> (number, dimension)
        sqlite = sqlite_with_extensions()
        import sqlite_vec

        db_path.parent.mkdir(parents=True, exist_ok=True)
        self.conn: Any = sqlite.connect(str(db_path), isolation_level=None, check_same_thread=False)
        self.conn.enable_load_extension(True)
        sqlite_vec.load(self.conn)
        self.conn.enable_load_extension(False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.executescript(_SCHEMA)

    async def _run(self, function: Any, *args: Any) -> Any:
        def locked() -> Any:
            with self.lock:
                return function(*args)

        return await asyncio.to_thread(locked)

    def _table(self, bank_id: str) -> str:
        if bank_id not in self.tables:
            raise ProviderError(f"sqlite-vec bank '{bank_id}' is not open")
        return f"memory_vectors_{self.tables[bank_id][0]}"

    def choose_index(self, bank_id: str, index: VectorIndexConfig) -> None:
        require_kind("sqlite-vec", index, ("auto", "exact"))

    async def open_bank(self, bank_id: str, dimension: int) -> None:
        await self._run(self._open, bank_id, dimension)

    def _open(self, bank_id: str, dimension: int) -> None:
        row = self.conn.execute("SELECT id, dimension FROM memory_banks WHERE bank_id = ?", (bank_id,)).fetchone()
        if row is not None and row[1] != dimension:
            raise InvalidRequest(
                f"memory bank '{bank_id}' already holds {row[1]}-dimensional vectors and cannot take "
                f"{dimension}-dimensional ones; unregister it first or use its embedding model"
            )
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            if row is None:
                cursor = self.conn.execute(
                    "INSERT INTO memory_banks (bank_id, dimension) VALUES (?, ?)", (bank_id, dimension)
                )
                row = (cursor.lastrowid, dimension)
            self.conn.execute(
                f"CREATE VIRTUAL TABLE IF NOT EXISTS memory_vectors_{int(row[0])} "
                f"USING vec0(embedding float[{dimension}] distance_metric=cosine)"
            )
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.tables[bank_id] = (int(row[0]), dimension)

    async def drop_bank(self, bank_id: str) -> None:
        await self._run(self._drop, bank_id)

    def _drop(self, bank_id: str) -> None:
        row = self.conn.execute("SELECT id FROM memory_banks WHERE bank_id = ?", (bank_id,)).fetchone()
        self.tables.pop(bank_id, None)
        if row is None:
            return
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            self.conn.execute(f"DROP TABLE IF EXISTS memory_vectors_{int(row[0])}")
            self.conn.execute("DELETE FROM memory_chunks WHERE bank = ?", (row[0],))
            self.conn.execute("DELETE FROM memory_banks WHERE id = ?", (row[0],))
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise

    async def replace_documents(
        self, bank_id: str, document_ids: list[str], chunks: list[StoredChunk], vectors: Vectors
    ) -> None:
        await self._run(self._replace, bank_id, document_ids, chunks, vectors)

    def _replace(self, bank_id: str, document_ids: list[str], chunks: list[StoredChunk], vectors: Vectors) -> None:
        table, bank = self._table(bank_id), self.tables[bank_id][0]
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            marks = ",".join("?" * len(document_ids))
            old = f"SELECT id FROM memory_chunks WHERE bank = ? AND document_id IN ({marks})"
            self.conn.execute(f"DELETE FROM {table} WHERE rowid IN ({old})", (bank, *document_ids))
            self.conn.execute(f"DELETE FROM memory_chunks WHERE id IN ({old})", (bank, *document_ids))
            rows: list[tuple[int, bytes]] = []
            for chunk, vector in zip(chunks, vectors, strict=True):
                cursor = self.conn.execute(
                    "INSERT INTO memory_chunks (bank, document_id, chunk_index, content, token_count, metadata) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        bank,
                        chunk.document_id,
                        chunk.chunk_index,
                        chunk.content,
                        chunk.token_count,
                        chunk.metadata_json(),
                    ),
                )
                rows.append((cursor.lastrowid, vector.tobytes()))
            self.conn.executemany(f"INSERT INTO {table} (rowid, embedding) VALUES (?, ?)", rows)
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise

    async def search(self, bank_id: str, vector: Vectors, k: int, filters: Filters) -> list[ScoredChunk]:
        result: list[ScoredChunk] = await self._run(self._search, bank_id, vector, k, filters)
        return result

    def _search(self, bank_id: str, vector: Vectors, k: int, filters: Filters) -> list[ScoredChunk]:
        table, bank = self._table(bank_id), self.tables[bank_id][0]
        query = f"SELECT rowid, distance FROM {table} WHERE embedding MATCH ? AND k = ?"
        args: list[Any] = [vector.tobytes(), k]
        if filters:
            clause, filter_args = _filter_clause(filters)
            query += f" AND rowid IN (SELECT c.id FROM memory_chunks c WHERE c.bank = ? AND {clause})"
            args += [bank, *filter_args]
        hits = self.conn.execute(query + " ORDER BY distance", args).fetchall()
        if not hits:
            return []
        marks = ",".join("?" * len(hits))
        rows = self.conn.execute(
            f"SELECT {_CHUNK_COLUMNS} FROM memory_chunks WHERE id IN ({marks})", [hit[0] for hit in hits]
        ).fetchall()
        chunks = {row[0]: _row_chunk(row) for row in rows}
        return [ScoredChunk(chunks[rowid], 1.0 - float(distance)) for rowid, distance in hits if rowid in chunks]

    async def all_chunks(self, bank_id: str) -> list[StoredChunk]:
        def read() -> list[StoredChunk]:
            self._table(bank_id)
            query = f"SELECT {_CHUNK_COLUMNS} FROM memory_chunks WHERE bank = ? ORDER BY id"
            return [_row_chunk(row) for row in self.conn.execute(query, (self.tables[bank_id][0],))]

        result: list[StoredChunk] = await self._run(read)
        return result

    async def document_chunks(self, bank_id: str, document_ids: list[str]) -> list[StoredChunk]:
        def read() -> list[StoredChunk]:
            self._table(bank_id)
            chunks: list[StoredChunk] = []
            for start in range(0, len(document_ids), 500):  # under SQLite's limit on bound parameters
                some = document_ids[start : start + 500]
                query = (
                    f"SELECT {_CHUNK_COLUMNS} FROM memory_chunks WHERE bank = ? "
                    f"AND document_id IN ({','.join('?' * len(some))}) ORDER BY id"
                )
                chunks += [_row_chunk(row) for row in self.conn.execute(query, (self.tables[bank_id][0], *some))]
            return chunks

        result: list[StoredChunk] = await self._run(read)
        return result

    async def close(self) -> None:
        await self._run(self.conn.close)
