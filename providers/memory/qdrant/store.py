"""Qdrant store: a collection per bank (cosine distance), through qdrant-client's async client,
either in local mode (a folder, no server) or against a Qdrant server URL.

Qdrant has no multi-operation transactions, so a replacement is ordered as for Chroma: the new
points are upserted under a fresh generation id, then the replaced documents' points of other
generations are deleted; a failed upsert deletes what it wrote before reporting the error.
Filters run in Qdrant on `metadata.<key>`, then are checked again in Python, so JSON types are
respected everywhere (local mode compares Python values, where True == 1).

Indexes are Qdrant's own: an `hnsw` or `auto` bank's collection gets an HNSW graph (m,
ef_construct from the index settings); Qdrant scans instead while a segment is smaller than
full_scan_threshold, which `auto` sets to its chunk threshold, so small banks answer exactly.
An `exact` bank builds no graph (m=0) and queries with exact=True. Local mode (qdrant-client
without a server) always scans: it has no HNSW, whatever the settings.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from llama_stack.apis.errors import InvalidRequest, ProviderError, UpstreamError

from ..common.config import VectorIndexConfig
from ..common.types import Filters, ScoredChunk, StoredChunk, Vectors, matches, require_kind

_BATCH = 256
_PAGE = 1000


def _chunk(payload: dict[str, Any]) -> StoredChunk:
    return StoredChunk(
        document_id=str(payload["document_id"]),
        chunk_index=int(payload["chunk_index"]),
        content=str(payload["content"]),
        token_count=int(payload["token_count"]),
        metadata=dict(payload.get("metadata") or {}),
    )


class QdrantStore:
    def __init__(self, client: Any, prefix: str, where: str) -> None:
        from qdrant_client import models

        self.client = client
        self.models = models
        self.prefix = prefix
        self.where = where
        self.names: dict[str, str] = {}
        self.indexes: dict[str, VectorIndexConfig] = {}

    @classmethod
    async def connect(cls, prefix: str, path: str | None, url: str | None, api_key: str | None) -> QdrantStore:
        from qdrant_client import AsyncQdrantClient

        where = url or f"local folder {path}"
        try:
            if url is not None:
                client = AsyncQdrantClient(url=url, api_key=api_key, check_compatibility=False)
            else:
                client = AsyncQdrantClient(path=path)
            await client.get_collections()
        except Exception as e:
            raise ConnectionError(f"qdrant: cannot open {where}: {e}") from e
        return cls(client, prefix, where)

    def _upstream(self, action: str, error: Exception) -> UpstreamError:
        return UpstreamError(f"qdrant ({self.where}): {action} failed: {error}")

    def _name(self, bank_id: str) -> str:
        name = self.names.get(bank_id)
        if name is None:
            raise ProviderError(f"Qdrant bank '{bank_id}' is not open")
        return name

    def choose_index(self, bank_id: str, index: VectorIndexConfig) -> None:
        require_kind("Qdrant", index, ("auto", "exact", "hnsw"))
        self.indexes[bank_id] = index

    def _hnsw_config(self, index: VectorIndexConfig, dimension: int) -> Any:
        m = self.models
        if index.kind == "exact":
            return m.HnswConfigDiff(m=0)
        # full_scan_threshold is in KB of vectors: `auto` scans up to its chunk threshold.
        threshold_kb = index.auto_threshold * dimension * 4 // 1024 if index.kind == "auto" else 10
        return m.HnswConfigDiff(
            m=index.hnsw_m, ef_construct=index.hnsw_ef_construction, full_scan_threshold=threshold_kb
        )

    def _search_params(self, bank_id: str, k: int) -> Any:
        index = self.indexes.get(bank_id)
        if index is None:
            return None
        if index.kind == "exact":
            return self.models.SearchParams(exact=True)
        return self.models.SearchParams(hnsw_ef=max(index.hnsw_ef_search, k))

    async def open_bank(self, bank_id: str, dimension: int) -> None:
        name = f"{self.prefix}_{hashlib.sha256(bank_id.encode('utf-8')).hexdigest()[:32]}"
        try:
            if await self.client.collection_exists(name):
                info = await self.client.get_collection(name)
                stored = info.config.params.vectors.size
                if stored != dimension:
                    raise InvalidRequest(
                        f"memory bank '{bank_id}' already holds {stored}-dimensional vectors and cannot take "
                        f"{dimension}-dimensional ones; unregister it first or use its embedding model"
                    )
            else:
                params = self.models.VectorParams(size=dimension, distance=self.models.Distance.COSINE)
                index = self.indexes.get(bank_id)
                hnsw = self._hnsw_config(index, dimension) if index is not None else None
                await self.client.create_collection(name, vectors_config=params, hnsw_config=hnsw)
        except InvalidRequest:
            raise
        except Exception as e:
            raise self._upstream(f"opening bank '{bank_id}'", e) from e
        self.names[bank_id] = name

    async def drop_bank(self, bank_id: str) -> None:
        name = f"{self.prefix}_{hashlib.sha256(bank_id.encode('utf-8')).hexdigest()[:32]}"
        self.names.pop(bank_id, None)
        self.indexes.pop(bank_id, None)
        try:
            if await self.client.collection_exists(name):
                await self.client.delete_collection(name)
        except Exception as e:
            raise self._upstream(f"dropping bank '{bank_id}'", e) from e

    def _match(self, key: str, value: Any) -> Any:
        m = self.models
        return m.FieldCondition(key=key, match=m.MatchValue(value=value))

    async def replace_documents(
        self, bank_id: str, document_ids: list[str], chunks: list[StoredChunk], vectors: Vectors
    ) -> None:
        m, name = self.models, self._name(bank_id)
        generation = uuid.uuid4().hex
        points = [
            m.PointStruct(
                id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{generation}/{i}")),
                vector=vector.tolist(),
                payload={**chunk.to_dict(), "generation": generation},
            )
            for i, (chunk, vector) in enumerate(zip(chunks, vectors, strict=True))
        ]
        try:
            for start in range(0, len(points), _BATCH):
                await self.client.upsert(name, points=points[start : start + _BATCH], wait=True)
        except Exception as e:
            try:
                await self.client.delete(name, points_selector=m.Filter(must=[self._match("generation", generation)]))
            finally:
                raise self._upstream(f"inserting into bank '{bank_id}'", e) from e
        stale = m.Filter(
            must=[m.FieldCondition(key="document_id", match=m.MatchAny(any=document_ids))],
            must_not=[self._match("generation", generation)],
        )
        try:
            await self.client.delete(name, points_selector=stale, wait=True)
        except Exception as e:
            raise self._upstream(f"removing replaced chunks from bank '{bank_id}'", e) from e

    async def search(self, bank_id: str, vector: Vectors, k: int, filters: Filters) -> list[ScoredChunk]:
        m, name = self.models, self._name(bank_id)
        conditions: list[Any] = []
        for key, value in filters.items():
            if isinstance(value, float) and not value.is_integer():
                conditions.append(m.FieldCondition(key=f"metadata.{key}", range=m.Range(gte=value, lte=value)))
            else:
                conditions.append(self._match(f"metadata.{key}", int(value) if isinstance(value, float) else value))
        try:
            response = await self.client.query_points(
                name,
                query=vector[0].tolist(),
                limit=k,
                query_filter=m.Filter(must=conditions) if conditions else None,
                search_params=self._search_params(bank_id, k),
                with_payload=True,
            )
        except Exception as e:
            raise self._upstream(f"querying bank '{bank_id}'", e) from e
        found = [ScoredChunk(_chunk(point.payload or {}), float(point.score)) for point in response.points]
        return [hit for hit in found if matches(hit.chunk.metadata, filters)]

    async def all_chunks(self, bank_id: str) -> list[StoredChunk]:
        name = self._name(bank_id)
        chunks: list[StoredChunk] = []
        offset: Any = None
        try:
            while True:
                points, offset = await self.client.scroll(name, limit=_PAGE, offset=offset, with_payload=True)
                chunks += [_chunk(point.payload or {}) for point in points]
                if offset is None:
                    return chunks
        except Exception as e:
            raise self._upstream(f"reading bank '{bank_id}'", e) from e

    async def document_chunks(self, bank_id: str, document_ids: list[str]) -> list[StoredChunk]:
        m, name = self.models, self._name(bank_id)
        only = m.Filter(must=[m.FieldCondition(key="document_id", match=m.MatchAny(any=document_ids))])
        chunks: list[StoredChunk] = []
        offset: Any = None
        try:
            while True:
                points, offset = await self.client.scroll(
                    name, scroll_filter=only, limit=_PAGE, offset=offset, with_payload=True
                )
                chunks += [_chunk(point.payload or {}) for point in points]
                if offset is None:
                    return chunks
        except Exception as e:
            raise self._upstream(f"reading bank '{bank_id}'", e) from e

    async def close(self) -> None:
        await self.client.close()
