"""Keyword (BM25) and key-value banks, kept in a kvstore; shared by every memory provider.

Each document is one kvstore entry holding all its chunks, so replacing a document is a single
write. A request that writes several documents restores the earlier values if a later write
fails, so a failed insert leaves the bank as it was. Keyword banks keep a BM25 index in memory,
loaded on the first query and rebuilt when another process wrote to the bank (keyword_indexes.py);
key-value banks answer a query whose text is a document_id with that document, read from the store.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from llama_stack.apis.errors import ProviderError, StackError
from llama_stack.distribution.store.api import KVStore

from .keyword_indexes import KeywordIndexes
from .types import Filters, ScoredChunk, StoredChunk, matches


def _bank_prefix(bank_id: str) -> str:
    # Quoting removes "/" from ids, so no bank's prefix is a prefix of another bank's keys.
    return f"bank:{quote(bank_id, safe='')}/"


def _document_key(bank_id: str, document_id: str) -> str:
    return _bank_prefix(bank_id) + quote(document_id, safe="")


def _encode(chunks: list[StoredChunk]) -> str:
    first = chunks[0]
    body = {
        "document_id": first.document_id,
        "metadata": first.metadata,
        "chunks": [[chunk.content, chunk.token_count] for chunk in chunks],
    }
    return json.dumps(body, ensure_ascii=False)


def _decode(raw: str) -> list[StoredChunk]:
    body: dict[str, Any] = json.loads(raw)
    return [
        StoredChunk(body["document_id"], index, content, token_count, body.get("metadata") or {})
        for index, (content, token_count) in enumerate(body["chunks"])
    ]


class KVBanks:
    def __init__(self, store: KVStore) -> None:
        self.store = store
        self.keyword_indexes = KeywordIndexes(store, "keyword")

    async def open_keyword_bank(self, bank_id: str) -> None:
        self.keyword_indexes.forget(bank_id)  # loaded from the store on the first query

    async def drop_bank(self, bank_id: str) -> None:
        for key in await self.store.keys_with_prefix(_bank_prefix(bank_id)):
            await self.store.delete(key)
        await self.keyword_indexes.dropped(bank_id)

    async def _values(self, bank_id: str) -> list[str]:
        prefix = _bank_prefix(bank_id)
        return await self.store.values_in_range(prefix, prefix + "\uffff")

    async def _chunks(self, bank_id: str) -> list[StoredChunk]:
        return [chunk for raw in await self._values(bank_id) for chunk in _decode(raw)]

    async def _document_chunks(self, bank_id: str, document_ids: list[str]) -> list[StoredChunk]:
        chunks: list[StoredChunk] = []
        for document_id in document_ids:
            raw = await self.store.get(_document_key(bank_id, document_id))
            if raw is not None:  # a deleted document has no chunks
                chunks += _decode(raw)
        return chunks

    async def write(self, bank_id: str, documents: list[list[StoredChunk]]) -> None:
        """Store each document (its chunks, in order), replacing one with the same id."""
        written: list[tuple[str, str | None]] = []
        try:
            for chunks in documents:
                key = _document_key(bank_id, chunks[0].document_id)
                previous = await self.store.get(key)
                await self.store.set(key, _encode(chunks))
                written.append((key, previous))
        except Exception as e:
            for key, previous in reversed(written):
                if previous is None:
                    await self.store.delete(key)
                else:
                    await self.store.set(key, previous)
            if isinstance(e, StackError):
                raise
            raise ProviderError(f"writing to the memory kvstore failed; nothing was stored ({e})") from e
        replaced = [chunks[0].document_id for chunks in documents]
        await self.keyword_indexes.wrote(bank_id, replaced, [chunk for chunks in documents for chunk in chunks])

    async def keyword_search(self, bank_id: str, query: str, k: int, filters: Filters) -> list[ScoredChunk]:
        return await self.keyword_indexes.search(
            bank_id,
            lambda: self._chunks(bank_id),
            lambda document_ids: self._document_chunks(bank_id, document_ids),
            lambda index: index.search(query, k, filters),
        )

    async def lookup(self, bank_id: str, key: str, filters: Filters) -> list[ScoredChunk]:
        raw = await self.store.get(_document_key(bank_id, key))
        if raw is None:
            return []
        chunks = _decode(raw)
        if not matches(chunks[0].metadata, filters):
            return []
        whole = StoredChunk(
            document_id=chunks[0].document_id,
            chunk_index=0,
            content="".join(chunk.content for chunk in chunks),
            token_count=sum(chunk.token_count for chunk in chunks),
            metadata=chunks[0].metadata,
        )
        return [ScoredChunk(whole, 1.0)]
