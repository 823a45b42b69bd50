"""Chroma store, against a Chroma server (`chroma run`): a collection per bank, cosine space.

Chroma has no transactions, so a replacement is ordered to be safe: the new chunks are written
first under a fresh generation id, then the replaced documents' chunks of other generations are
deleted. A failed write removes what it wrote before reporting the error, so the bank keeps its
previous content; between the two steps a query may briefly see both versions of a document.

Document metadata is kept whole as JSON, and its scalar values also as `m.<key>` fields so that
filters run in Chroma.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from typing import Any
from urllib.parse import urlsplit

from llama_stack.apis.errors import InvalidRequest, ProviderError, UpstreamError

from ..common.config import VectorIndexConfig
from ..common.types import Filters, ScoredChunk, StoredChunk, Vectors, matches, require_kind

_PAGE = 1000


def _where(filters: Filters) -> dict[str, Any] | None:
    clauses: list[dict[str, Any]] = [{f"m.{key}": value} for key, value in filters.items()]
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def _chunk(content: str, metadata: dict[str, Any]) -> StoredChunk:
    return StoredChunk(
        document_id=str(metadata["document_id"]),
        chunk_index=int(metadata["chunk_index"]),
        content=content,
        token_count=int(metadata["token_count"]),
        metadata=json.loads(str(metadata["_metadata"])),
    )


class ChromaStore:
    def __init__(self, client: Any, prefix: str, url: str) -> None:
        self.client = client
        self.prefix = prefix
        self.url = url
        self.collections: dict[str, Any] = {}

    @classmethod
    async def connect(cls, url: str, prefix: str) -> ChromaStore:
        import chromadb

        parts = urlsplit(url)
        secure = parts.scheme == "https"

        def client() -> Any:
            made = chromadb.HttpClient(
                host=parts.hostname or "localhost", port=parts.port or (443 if secure else 8000), ssl=secure
            )
            made.heartbeat()
            return made

        try:
            return cls(await asyncio.to_thread(client), prefix, url)
        except Exception as e:
            raise ConnectionError(f"chromadb: cannot reach the Chroma server at {url}: {e}") from e

    async def _call(self, action: str, function: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await asyncio.to_thread(function, *args, **kwargs)
        except (InvalidRequest, ProviderError):
            raise
        except Exception as e:
            raise UpstreamError(f"chromadb ({self.url}): {action} failed: {e}") from e

    def _name(self, bank_id: str) -> str:
        return f"{self.prefix}-{hashlib.sha256(bank_id.encode('utf-8')).hexdigest()[:32]}"

    def _collection(self, bank_id: str) -> Any:
        collection = self.collections.get(bank_id)
        if collection is None:
            raise ProviderError(f"Chroma bank '{bank_id}' is not open")
        return collection

    def choose_index(self, bank_id: str, index: VectorIndexConfig) -> None:
        # Chroma indexes every collection with its own HNSW (search_ef 200 below); nothing else.
        require_kind("Chroma", index, ("auto", "hnsw"))

    async def open_bank(self, bank_id: str, dimension: int) -> None:
        metadata = {"hnsw:space": "cosine", "hnsw:search_ef": 200, "llamastack_dimension": dimension}
        collection = await self._call(
            f"opening bank '{bank_id}'",
            self.client.get_or_create_collection,
            self._name(bank_id),
            metadata=metadata,
            embedding_function=None,
        )
        stored = (collection.metadata or {}).get("llamastack_dimension", dimension)
        if stored != dimension:
            raise InvalidRequest(
                f"memory bank '{bank_id}' already holds {stored}-dimensional vectors and cannot take "
                f"{dimension}-dimensional ones; unregister it first or use its embedding model"
            )
        self.collections[bank_id] = collection

    async def drop_bank(self, bank_id: str) -> None:
        self.collections.pop(bank_id, None)
        name = self._name(bank_id)
        existing = await self._call("listing collections", self.client.list_collections)
        if any(getattr(c, "name", c) == name for c in existing):
            await self._call(f"dropping bank '{bank_id}'", self.client.delete_collection, name)

    async def replace_documents(
        self, bank_id: str, document_ids: list[str], chunks: list[StoredChunk], vectors: Vectors
    ) -> None:
        await self._call(f"inserting into bank '{bank_id}'", self._replace, bank_id, document_ids, chunks, vectors)

    def _replace(self, bank_id: str, document_ids: list[str], chunks: list[StoredChunk], vectors: Vectors) -> None:
        collection = self._collection(bank_id)
        generation = uuid.uuid4().hex
        ids = [f"{generation}-{i}" for i in range(len(chunks))]
        metadatas: list[dict[str, Any]] = []
        for chunk in chunks:
            fields: dict[str, Any] = {
                "document_id": chunk.document_id,
                "chunk_index": chunk.chunk_index,
                "token_count": chunk.token_count,
                "_gen": generation,
                "_metadata": chunk.metadata_json(),
            }
            fields.update({f"m.{k}": v for k, v in chunk.metadata.items() if isinstance(v, str | int | float | bool)})
            metadatas.append(fields)
        batch = max(1, int(self.client.get_max_batch_size()))
        try:
            for start in range(0, len(ids), batch):
                end = start + batch
                collection.add(
                    ids=ids[start:end],
                    embeddings=vectors[start:end],
                    documents=[chunk.content for chunk in chunks[start:end]],
                    metadatas=metadatas[start:end],
                )
        except Exception:
            collection.delete(where={"_gen": generation})
            raise
        collection.delete(where={"$and": [{"document_id": {"$in": document_ids}}, {"_gen": {"$ne": generation}}]})

    async def search(self, bank_id: str, vector: Vectors, k: int, filters: Filters) -> list[ScoredChunk]:
        collection = self._collection(bank_id)
        result = await self._call(
            f"querying bank '{bank_id}'",
            collection.query,
            query_embeddings=vector,
            n_results=k,
            where=_where(filters),
            include=["documents", "metadatas", "distances"],
        )
        found: list[ScoredChunk] = []
        for content, metadata, distance in zip(
            result["documents"][0], result["metadatas"][0], result["distances"][0], strict=True
        ):
            chunk = _chunk(content, metadata)
            if matches(chunk.metadata, filters):
                found.append(ScoredChunk(chunk, 1.0 - float(distance)))
        return found

    async def all_chunks(self, bank_id: str) -> list[StoredChunk]:
        collection = self._collection(bank_id)
        chunks: list[StoredChunk] = []
        offset = 0
        while True:
            page = await self._call(
                f"reading bank '{bank_id}'",
                collection.get,
                include=["documents", "metadatas"],
                limit=_PAGE,
                offset=offset,
            )
            chunks += [_chunk(c, m) for c, m in zip(page["documents"], page["metadatas"], strict=True)]
            if len(page["ids"]) < _PAGE:
                return chunks
            offset += _PAGE

    async def document_chunks(self, bank_id: str, document_ids: list[str]) -> list[StoredChunk]:
        collection = self._collection(bank_id)
        page = await self._call(
            f"reading bank '{bank_id}'",
            collection.get,
            where={"document_id": {"$in": document_ids}},
            include=["documents", "metadatas"],
        )
        return [_chunk(c, m) for c, m in zip(page["documents"], page["metadatas"], strict=True)]

    async def close(self) -> None:
        self.collections.clear()
