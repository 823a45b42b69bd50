"""BM25 indexes that stay correct when several processes write to the same banks.

Each process keeps its BM25 indexes in memory, but the chunks they index live in the shared store
(Postgres, a Chroma server, a kvstore), where any replica may replace them. So every bank has a
generation: a counter in the provider's kvstore that each committed write increments, whichever
process made it. A keyword or hybrid query reads the counter (one small read) and trusts its index
only if the index was built at that generation; otherwise it rebuilds it from the store.

The order of the steps is what makes this correct. A writer commits its chunks, then increments;
a rebuilder reads the counter, then the chunks. So an index labelled generation n holds at least
every write counted in n; a write it might have missed has not been counted yet, and its
increment will make the index stale. A process's own write updates its index in place, and moves
it to the new generation only when the counter moved by exactly one (its own increment), so a
bank with one writer never rebuilds, and a write from another replica costs one rebuild on the
next keyword query here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from urllib.parse import quote

from llama_stack.distribution.store.api import KVStore

from .bm25 import BM25Index
from .types import StoredChunk

Loader = Callable[[], Awaitable[list[StoredChunk]]]
Change = Callable[[BM25Index], None]


class KeywordIndexes:
    """The indexes of one kind of bank (`kind` keeps vector and keyword banks' counters apart)."""

    def __init__(self, store: KVStore, kind: str) -> None:
        self.store = store
        self.kind = kind
        self.indexes: dict[str, BM25Index] = {}
        self.rebuilding: dict[str, asyncio.Lock] = {}

    def _counter(self, bank_id: str) -> str:
        return f"bm25-generation:{self.kind}:{quote(bank_id, safe='')}"

    async def current(self, bank_id: str, load: Loader) -> BM25Index:
        """The bank's index as of its latest committed write, rebuilt with `load` if needed."""
        index = self.indexes.get(bank_id)
        if index is not None and index.generation == await self.store.counter(self._counter(bank_id)):
            return index
        async with self.rebuilding.setdefault(bank_id, asyncio.Lock()):
            # Read again after waiting: a concurrent query may have rebuilt it meanwhile.
            generation = await self.store.counter(self._counter(bank_id))
            index = self.indexes.get(bank_id)
            if index is not None and index.generation == generation:
                return index
            fresh = BM25Index(generation=generation)
            chunks = await load()
            await asyncio.to_thread(fresh.add, chunks)
            self.indexes[bank_id] = fresh
            return fresh

    async def wrote(self, bank_id: str, change: Change) -> None:
        """Count a committed write to the bank, and apply it to this process's index."""
        index = self.indexes.get(bank_id)
        if index is not None:
            change(index)
        generation = await self.store.increment(self._counter(bank_id))
        if index is not None and index.generation == generation - 1 and self.indexes.get(bank_id) is index:
            index.generation = generation

    async def dropped(self, bank_id: str) -> None:
        """The bank's data is gone: other processes' indexes of it must not answer any more."""
        self.indexes.pop(bank_id, None)
        await self.store.increment(self._counter(bank_id))

    def forget(self, bank_id: str) -> None:
        self.indexes.pop(bank_id, None)
