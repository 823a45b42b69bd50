"""FAISS vector store: an inner-product index per bank (vectors are unit length, so the score is
cosine similarity), exact or approximate as the bank chose (ann.py). The bank's append-only log
(log.py) is the source of truth; an approximate index is also snapshotted (snapshot.py) each time it
grew by half, so a restart loads it and adds only the rows logged since, instead of rebuilding.

Layout under `persist_dir`: banks/<sha256 of bank id>/meta.json (bank id, dimension), log and
index.snapshot. Dropping a bank renames its folder away first, so a crash never leaves half a bank.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import shutil
import threading
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from llama_stack.apis.errors import InvalidRequest, ProviderError

from ..common.config import VectorIndexConfig
from ..common.types import Filters, ScoredChunk, StoredChunk, Vectors, matches
from .ann import Ids, RowIndex, build, kind_of, needs_rebuild, target_kind
from .log import LogWriter, Record, fsync_directory, read_records, write_log_atomically
from .snapshot import read_snapshot, write_snapshot

log = logging.getLogger(__name__)

COMPACT_MIN_DEAD = 1000
COMPACT_RECORD_ROWS = 10_000
SNAPSHOT_MIN_ROWS = 10_000
_NO_IDS: Ids = np.zeros(0, np.int64)


def _postings_keys(metadata: dict[str, Any]) -> list[tuple[str, str]]:
    """(key, value) pairs a filter can ask for, with values tagged by JSON type (1 == 1.0, true != 1)."""
    keys: list[tuple[str, str]] = []
    for key, value in metadata.items():
        if isinstance(value, bool):
            keys.append((key, f"b{value}"))
        elif isinstance(value, int | float):
            keys.append((key, f"n{float(value)!r}"))
        elif isinstance(value, str):
            keys.append((key, f"s{value}"))
    return keys


class FaissBank:
    def __init__(self, folder: Path, dimension: int, settings: VectorIndexConfig) -> None:
        self.folder = folder
        self.dimension = dimension
        self.settings = settings
        self.rows = build("exact", settings, dimension, _NO_IDS, np.zeros((0, dimension), np.float32))
        self.chunks: dict[int, StoredChunk] = {}
        self.by_document: dict[str, list[int]] = {}
        self.postings: dict[tuple[str, str], set[int]] = {}  # metadata (key, value) -> chunk ids
        self.next_id = 0
        self.snapshot_rows = 0  # rows in the index's last snapshot
        self.unsnapshotted = 0  # rows added to the index since
        self.lock = threading.Lock()
        self.writer: LogWriter | None = None

    @property
    def log_path(self) -> Path:
        return self.folder / "log"

    @property
    def snapshot_path(self) -> Path:
        return self.folder / "index.snapshot"

    def load(self) -> None:
        blocks: list[tuple[Ids, Vectors]] = []
        dead = 0
        for record in read_records(self.log_path, self.dimension):
            dead += len(self._forget(record.deleted_documents))
            self._remember(record.ids, record.chunks)
            blocks.append((np.asarray(record.ids, np.int64), record.vectors))
            self.next_id = max([self.next_id, *(i + 1 for i in record.ids)])
        ids = np.concatenate([block[0] for block in blocks]) if blocks else _NO_IDS
        live = np.fromiter((i in self.chunks for i in ids.tolist()), bool, len(ids))
        live_ids = ids[live]
        live_vectors = np.concatenate([block[1] for block in blocks])[live] if blocks else self._no_vectors()
        self.rows = self._restore(live_ids, live_vectors)
        if dead >= COMPACT_MIN_DEAD and dead > len(self.chunks):
            self._compact(live_ids, live_vectors)
        self.writer = LogWriter(self.log_path)

    def _no_vectors(self) -> Vectors:
        return np.zeros((0, self.dimension), np.float32)

    def _restore(self, ids: Ids, vectors: Vectors) -> RowIndex:
        """The index of these live rows: the snapshot brought up to date when it fits, else built."""
        kind = target_kind(self.settings, len(ids))
        snapshot = read_snapshot(self.snapshot_path) if kind != "exact" else None
        if snapshot is None or kind_of(snapshot[0]) != kind:
            rows = build(kind, self.settings, self.dimension, ids, vectors)
            if kind != "exact":
                self._snapshot(rows)
            return rows
        index, snapshot_ids = snapshot
        rows = RowIndex(index, snapshot_ids, self.settings)
        rows.live = np.isin(snapshot_ids, ids)
        newer = ids > (snapshot_ids[-1] if len(snapshot_ids) else -1)
        rows.add(ids[newer], vectors[newer])
        self.snapshot_rows, self.unsnapshotted = len(snapshot_ids), int(np.count_nonzero(newer))
        return rows

    def _snapshot(self, rows: RowIndex) -> None:
        write_snapshot(self.snapshot_path, rows.index, rows.ids)
        self.snapshot_rows, self.unsnapshotted = len(rows.ids), 0

    def _rebuild(self) -> None:
        ids, vectors = self.rows.live_vectors()
        kind = target_kind(self.settings, len(ids))
        log.info("%s: rebuilding its %s index as %s over %d chunks", self.folder, self.rows.kind, kind, len(ids))
        self.rows = build(kind, self.settings, self.dimension, ids, vectors)
        if kind == "exact":
            self.snapshot_path.unlink(missing_ok=True)
            self.snapshot_rows = self.unsnapshotted = 0
        else:
            self._snapshot(self.rows)

    def reconfigure(self, settings: VectorIndexConfig) -> None:
        """A bank registered again with another index choice."""
        with self.lock:
            if settings != self.settings:
                self.settings = settings
                if target_kind(settings, self.rows.live_rows) != self.rows.kind:
                    self._rebuild()
                else:
                    self.rows.settings = settings  # a new ef_search or probe count applies at once

    def _compact(self, ids: np.ndarray[Any, Any], vectors: Vectors) -> None:
        records = []
        for start in range(0, len(ids), COMPACT_RECORD_ROWS):
            part = ids[start : start + COMPACT_RECORD_ROWS].tolist()
            records.append(Record([], part, [self.chunks[i] for i in part], vectors[start : start + len(part)]))
        write_log_atomically(self.log_path, records)
        log.info("compacted %s to %d chunks", self.log_path, len(ids))

    def _forget(self, document_ids: list[str]) -> list[int]:
        removed: list[int] = []
        for document_id in document_ids:
            for chunk_id in self.by_document.pop(document_id, []):
                chunk = self.chunks.pop(chunk_id, None)
                removed.append(chunk_id)
                for key in _postings_keys(chunk.metadata if chunk else {}):
                    holders = self.postings.get(key)
                    if holders is not None:
                        holders.discard(chunk_id)
                        if not holders:
                            del self.postings[key]
        return removed

    def _remember(self, ids: list[int], chunks: list[StoredChunk]) -> None:
        for chunk_id, chunk in zip(ids, chunks, strict=True):
            self.chunks[chunk_id] = chunk
            self.by_document.setdefault(chunk.document_id, []).append(chunk_id)
            for key in _postings_keys(chunk.metadata):
                self.postings.setdefault(key, set()).add(chunk_id)

    def replace(self, document_ids: list[str], chunks: list[StoredChunk], vectors: Vectors) -> None:
        with self.lock:
            if self.writer is None:
                raise ProviderError(f"FAISS bank at {self.folder} is closed")
            ids = list(range(self.next_id, self.next_id + len(chunks)))
            try:
                self.writer.append(Record(document_ids, ids, chunks, vectors))
            except OSError as e:
                raise ProviderError(f"cannot write the FAISS log {self.log_path}: {e}; nothing was stored") from e
            self.next_id += len(chunks)
            removed = self._forget(document_ids)
            if removed:
                self.rows.remove(np.asarray(removed, np.int64))
            self._remember(ids, chunks)
            self.rows.add(np.asarray(ids, np.int64), vectors)
            self.unsnapshotted += len(ids)
            self._keep_index_in_shape()

    def _keep_index_in_shape(self) -> None:
        """Rebuild when the index no longer fits the bank; snapshot an approximate index each time
        it grew by half (at least SNAPSHOT_MIN_ROWS rows), so snapshots cost O(1) per row amortised."""
        if needs_rebuild(self.rows, self.settings):
            self._rebuild()
        elif self.rows.kind != "exact" and self.unsnapshotted >= max(SNAPSHOT_MIN_ROWS, self.snapshot_rows // 2):
            self._snapshot(self.rows)

    def search(self, vector: Vectors, k: int, filters: Filters) -> list[ScoredChunk]:
        with self.lock:
            allowed = None
            if filters:
                matching = self._matching(filters)
                if not matching:
                    return []
                allowed = np.asarray(matching, np.int64)
            k = min(k, len(self.chunks))
            if k == 0:
                return []
            hits = self.rows.search(np.ascontiguousarray(vector, np.float32), k, allowed)
            return [ScoredChunk(self.chunks[i], score) for i, score in hits if i in self.chunks]

    def _matching(self, filters: Filters) -> list[int]:
        candidates = sorted((self.postings.get(key, set()) for key in _postings_keys(dict(filters))), key=len)
        if len(candidates) < len(filters):  # a filter value that is not a JSON scalar
            return [i for i, chunk in self.chunks.items() if matches(chunk.metadata, filters)]
        return list(set.intersection(*candidates)) if candidates else []

    def close(self) -> None:
        with self.lock:
            if self.writer is not None:
                self.writer.close()
                self.writer = None
            if self.rows.kind != "exact" and self.unsnapshotted:
                self._snapshot(self.rows)  # a clean shutdown restarts without replaying into the index


class FaissVectorStore:
    def __init__(self, persist_dir: Path, index: VectorIndexConfig | None = None) -> None:
        """`index`: the banks' default (the provider passes its config's); exact when not given."""
        self.root = persist_dir / "banks"
        self.banks: dict[str, FaissBank] = {}
        self.default_index = index or VectorIndexConfig(kind="exact")
        self.chosen: dict[str, VectorIndexConfig] = {}

    def choose_index(self, bank_id: str, index: VectorIndexConfig) -> None:
        self.chosen[bank_id] = index  # FAISS offers every kind

    def _folder(self, bank_id: str) -> Path:
        return self.root / hashlib.sha256(bank_id.encode("utf-8")).hexdigest()[:32]

    def _bank(self, bank_id: str) -> FaissBank:
        bank = self.banks.get(bank_id)
        if bank is None:
            raise ProviderError(f"FAISS bank '{bank_id}' is not open")
        return bank

    async def open_bank(self, bank_id: str, dimension: int) -> None:
        if bank_id in self.banks:
            if self.banks[bank_id].dimension != dimension:
                raise self._dimension_clash(bank_id, self.banks[bank_id].dimension, dimension)
            await asyncio.to_thread(self.banks[bank_id].reconfigure, self._settings(bank_id))
            return
        self.banks[bank_id] = await asyncio.to_thread(self._open, bank_id, dimension)

    def _dimension_clash(self, bank_id: str, stored: int, wanted: int) -> InvalidRequest:
        return InvalidRequest(
            f"memory bank '{bank_id}' already holds {stored}-dimensional vectors and cannot take "
            f"{wanted}-dimensional ones; unregister it first or use its embedding model"
        )

    def _settings(self, bank_id: str) -> VectorIndexConfig:
        return self.chosen.get(bank_id, self.default_index)

    def _open(self, bank_id: str, dimension: int) -> FaissBank:
        folder = self._folder(bank_id)
        meta_path = folder / "meta.json"
        if meta_path.exists():
            stored = int(json.loads(meta_path.read_text())["dimension"])
            if stored != dimension:
                raise self._dimension_clash(bank_id, stored, dimension)
        else:
            folder.mkdir(parents=True, exist_ok=True)
            temporary = folder / "meta.json.tmp"
            temporary.write_text(json.dumps({"bank_id": bank_id, "dimension": dimension}))
            os.replace(temporary, meta_path)
            (folder / "log").touch()
            fsync_directory(folder)
            fsync_directory(self.root)
        bank = FaissBank(folder, dimension, self._settings(bank_id))
        bank.load()
        return bank

    async def drop_bank(self, bank_id: str) -> None:
        bank = self.banks.pop(bank_id, None)
        self.chosen.pop(bank_id, None)
        if bank is not None:
            with bank.lock:
                if bank.writer is not None:
                    bank.writer.close()
                    bank.writer = None
        folder = self._folder(bank_id)
        if folder.exists():
            trash = self.root / f"dropped-{uuid.uuid4().hex}"
            os.replace(folder, trash)
            await asyncio.to_thread(shutil.rmtree, trash, True)

    async def replace_documents(
        self, bank_id: str, document_ids: list[str], chunks: list[StoredChunk], vectors: Vectors
    ) -> None:
        await asyncio.to_thread(self._bank(bank_id).replace, document_ids, chunks, vectors)

    async def search(self, bank_id: str, vector: Vectors, k: int, filters: Filters) -> list[ScoredChunk]:
        return await asyncio.to_thread(self._bank(bank_id).search, vector, k, filters)

    async def all_chunks(self, bank_id: str) -> list[StoredChunk]:
        bank = self._bank(bank_id)
        with bank.lock:
            return list(bank.chunks.values())

    async def document_chunks(self, bank_id: str, document_ids: list[str]) -> list[StoredChunk]:
        wanted, bank = set(document_ids), self._bank(bank_id)
        with bank.lock:
            return [chunk for chunk in bank.chunks.values() if chunk.document_id in wanted]

    async def close(self) -> None:
        for bank in self.banks.values():
            await asyncio.to_thread(bank.close)
        self.banks.clear()
