"""FAISS vector store: an exact inner-product index per bank (vectors are unit length, so the score
is cosine similarity), rebuilt at startup from the bank's append-only log (log.py).

Layout under `persist_dir`: banks/<sha256 of bank id>/meta.json (bank id, dimension) and log.
Dropping a bank renames its folder away first, so a crash never leaves half a bank.
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

import faiss
import numpy as np

from llama_stack.apis.errors import InvalidRequest, ProviderError

from ..common.types import Filters, ScoredChunk, StoredChunk, Vectors, matches
from .log import LogWriter, Record, fsync_directory, read_records, write_log_atomically

log = logging.getLogger(__name__)

COMPACT_MIN_DEAD = 1000
COMPACT_RECORD_ROWS = 10_000


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
    def __init__(self, folder: Path, dimension: int) -> None:
        self.folder = folder
        self.dimension = dimension
        self.index: Any = faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))
        self.chunks: dict[int, StoredChunk] = {}
        self.by_document: dict[str, list[int]] = {}
        self.postings: dict[tuple[str, str], set[int]] = {}  # metadata (key, value) -> chunk ids
        self.next_id = 0
        self.lock = threading.Lock()
        self.writer: LogWriter | None = None

    @property
    def log_path(self) -> Path:
        return self.folder / "log"

    def load(self) -> None:
        blocks: list[tuple[np.ndarray[Any, Any], Vectors]] = []
        dead = 0
        for record in read_records(self.log_path, self.dimension):
            dead += len(self._forget(record.deleted_documents))
            self._remember(record.ids, record.chunks)
            blocks.append((np.asarray(record.ids, np.int64), record.vectors))
            self.next_id = max([self.next_id, *(i + 1 for i in record.ids)])
        if blocks:
            ids = np.concatenate([block[0] for block in blocks])
            vectors = np.concatenate([block[1] for block in blocks])
            live = np.fromiter((i in self.chunks for i in ids.tolist()), bool, len(ids))
            if live.any():
                self.index.add_with_ids(np.ascontiguousarray(vectors[live]), ids[live])
            if dead >= COMPACT_MIN_DEAD and dead > len(self.chunks):
                self._compact(ids[live], vectors[live])
        self.writer = LogWriter(self.log_path)

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
                self.index.remove_ids(faiss.IDSelectorBatch(np.asarray(removed, np.int64)))
            self._remember(ids, chunks)
            if ids:
                self.index.add_with_ids(np.ascontiguousarray(vectors), np.asarray(ids, np.int64))

    def search(self, vector: Vectors, k: int, filters: Filters) -> list[ScoredChunk]:
        with self.lock:
            params = None
            if filters:
                allowed = self._matching(filters)
                if not allowed:
                    return []
                params = faiss.SearchParameters()
                selector = faiss.IDSelectorBatch(np.asarray(allowed, np.int64))
                params.sel = selector
            k = min(k, self.index.ntotal)
            if k == 0:
                return []
            scores, ids = self.index.search(np.ascontiguousarray(vector), k, params=params)
            return [
                ScoredChunk(self.chunks[int(i)], float(score))
                for score, i in zip(scores[0], ids[0], strict=True)
                if i >= 0
            ]

    def _matching(self, filters: Filters) -> list[int]:
        candidates = sorted((self.postings.get(key, set()) for key in _postings_keys(dict(filters))), key=len)
        if len(candidates) < len(filters):  # a filter value that is not a JSON scalar
            return [i for i, chunk in self.chunks.items() if matches(chunk.metadata, filters)]
        return list(set.intersection(*candidates)) if candidates else []

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class FaissVectorStore:
    def __init__(self, persist_dir: Path) -> None:
        self.root = persist_dir / "banks"
        self.banks: dict[str, FaissBank] = {}

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
            return
        self.banks[bank_id] = await asyncio.to_thread(self._open, bank_id, dimension)

    def _dimension_clash(self, bank_id: str, stored: int, wanted: int) -> InvalidRequest:
        return InvalidRequest(
            f"memory bank '{bank_id}' already holds {stored}-dimensional vectors and cannot take "
            f"{wanted}-dimensional ones; unregister it first or use its embedding model"
        )

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
        bank = FaissBank(folder, dimension)
        bank.load()
        return bank

    async def drop_bank(self, bank_id: str) -> None:
        bank = self.banks.pop(bank_id, None)
        if bank is not None:
            bank.close()
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
            bank.close()
        self.banks.clear()
