"""BM25 indexes that stay correct when several processes write to the same banks.

Each process keeps its BM25 indexes in memory, but the chunks they index live in the shared store
(Postgres, a Chroma server, a kvstore), where any replica may replace them. So every bank has a
generation: a counter in the provider's kvstore that each committed write increments, whichever
process made it, and a short log saying which documents the write of each generation touched.

A keyword or hybrid query reads the counter (one small read) and trusts its index only if the index
was built at that generation. Otherwise it catches up: it reads the log entries since its own
generation and re-reads the chunks of just those documents, so a write elsewhere costs the work of
that write, not of the whole bank. When an entry is missing (trimmed, or its writer has counted
but not logged yet) the index is rebuilt from every chunk of the bank.

The order of the steps is what makes this correct. A writer commits its chunks, then increments,
then logs; a reader reads the counter, then the log, then the chunks. So an index labelled
generation n holds at least every write counted in n; a write it might have missed is counted
later, and its increment makes the index stale again. A process's own write is applied to its index
in place, under the same per-bank lock as catching up, and moves the index to the new generation
only when the counter moved by exactly one (its own increment), so a bank with one writer never
reads anything back.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import TypeVar
from urllib.parse import quote

from llama_stack.distribution.store.api import KVStore

from .bm25 import BM25Index
from .types import StoredChunk

AllChunks = Callable[[], Awaitable[list[StoredChunk]]]
DocumentChunks = Callable[[list[str]], Awaitable[list[StoredChunk]]]
T = TypeVar("T")

# Log entries kept per bank: a process more writes behind than this rebuilds instead.
KEEP_CHANGES = 256


class KeywordIndexes:
    """The indexes of one kind of bank (`kind` keeps vector and keyword banks' counters apart)."""

    def __init__(self, store: KVStore, kind: str) -> None:
        self.store = store
        self.kind = kind
        self.indexes: dict[str, BM25Index] = {}
        self.locks: dict[str, asyncio.Lock] = {}

    def _counter(self, bank_id: str) -> str:
        return f"bm25-generation:{self.kind}:{quote(bank_id, safe='')}"

    def _log_prefix(self, bank_id: str) -> str:
        return f"bm25-change:{self.kind}:{quote(bank_id, safe='')}:"

    def _log_key(self, bank_id: str, generation: int) -> str:
        return f"{self._log_prefix(bank_id)}{generation:020d}"

    def _lock(self, bank_id: str) -> asyncio.Lock:
        return self.locks.setdefault(bank_id, asyncio.Lock())

    async def _current(self, bank_id: str, all_chunks: AllChunks, document_chunks: DocumentChunks) -> BM25Index:
        """The bank's index as of its latest committed write."""
        index = self.indexes.get(bank_id)
        if index is not None and index.generation == await self.store.counter(self._counter(bank_id)):
            return index
        async with self._lock(bank_id):
            # Read again after waiting: a concurrent query may have caught up meanwhile.
            generation = await self.store.counter(self._counter(bank_id))
            index = self.indexes.get(bank_id)
            if index is not None and index.generation == generation:
                return index
            if index is not None and index.generation < generation:
                changed = await self._changed_documents(bank_id, index.generation, generation)
                if changed is not None:
                    index.replace_documents(changed, await document_chunks(changed))
                    index.generation = generation
                    return index
            fresh = BM25Index(generation=generation)
            chunks = await all_chunks()
            await asyncio.to_thread(fresh.add, chunks)
            self.indexes[bank_id] = fresh
            return fresh

    async def search(
        self, bank_id: str, all_chunks: AllChunks, document_chunks: DocumentChunks, search: Callable[[BM25Index], T]
    ) -> T:
        """`search` run on the bank's index as of its latest committed write.

        The index this process holds is searched first and the counter read after, not before:
        the read waits on the store (a thread or the network), and in hybrid search the vector
        search runs meanwhile, so the BM25 work overlaps both instead of waiting behind the read.
        The answer stands when the counter still equals the generation the index had when it was
        searched: that index held every write counted by the time of the read, the same guarantee
        as reading first. Otherwise the index catches up and is searched again."""
        index = self.indexes.get(bank_id)
        if index is not None:
            generation = index.generation
            found = search(index)
            if await self.store.counter(self._counter(bank_id)) == generation and self.indexes.get(bank_id) is index:
                return found
        return search(await self._current(bank_id, all_chunks, document_chunks))

    async def _changed_documents(self, bank_id: str, since: int, until: int) -> list[str] | None:
        """The documents written in generations (since, until]; None unless every entry is there."""
        if until - since > KEEP_CHANGES:
            return None
        entries = await self.store.values_in_range(self._log_key(bank_id, since + 1), self._log_key(bank_id, until + 1))
        if len(entries) != until - since:
            return None
        return sorted({document_id for entry in entries for document_id in json.loads(entry)})

    async def wrote(self, bank_id: str, document_ids: list[str], chunks: list[StoredChunk]) -> None:
        """Count a committed write (these documents now hold these chunks) and apply it here."""
        async with self._lock(bank_id):
            index = self.indexes.get(bank_id)
            if index is not None:
                index.replace_documents(document_ids, chunks)
            generation = await self.store.increment(self._counter(bank_id))
            await self.store.set(self._log_key(bank_id, generation), json.dumps(sorted(set(document_ids))))
            if generation > KEEP_CHANGES:
                await self.store.delete(self._log_key(bank_id, generation - KEEP_CHANGES))
            if index is not None and index.generation == generation - 1:
                index.generation = generation

    async def dropped(self, bank_id: str) -> None:
        """The bank's data is gone: every process's index of it must be rebuilt before it answers."""
        async with self._lock(bank_id):
            self.indexes.pop(bank_id, None)
            await self.store.increment(self._counter(bank_id))  # unlogged: others rebuild
            for key in await self.store.keys_with_prefix(self._log_prefix(bank_id)):
                await self.store.delete(key)

    def forget(self, bank_id: str) -> None:
        self.indexes.pop(bank_id, None)
