"""The Memory API over any VectorStore: banks, ingestion, chunking, embedding and the three search
modes. Every memory provider is this engine plus its own VectorStore.

An insert does everything that can fail (fetching, parsing, chunking, embedding, checking
dimensions) before it writes anything, and the write itself is one atomic `replace_documents`,
so a failed insert leaves the bank as it was.

Keyword search over a vector bank uses a BM25 index built from the bank's chunks on the first
keyword or hybrid query, kept up to date by this process's writes and rebuilt when another
process sharing the store wrote to the bank (keyword_indexes.py). A query that names no mode is
answered in hybrid mode, which ranks best across every kind of question we measured.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import Any

import numpy as np

from llama_stack.apis.common import content_has_image, content_text
from llama_stack.apis.errors import InvalidRequest, MemoryBankNotFound, NotImplementedYet, UpstreamError
from llama_stack.apis.inference import EmbeddingsRequest
from llama_stack.apis.memory import (
    Chunk,
    DeleteDocumentsRequest,
    InsertDocumentsRequest,
    QueryDocumentsRequest,
    QueryDocumentsResponse,
)
from llama_stack.apis.memory_banks import KeyValueMemoryBank, KeywordMemoryBank, MemoryBank, VectorMemoryBank
from llama_stack.distribution.outbound import OutboundPolicy
from llama_stack.distribution.store.api import KVStore

from .chunking import check_chunking, chunk_text, count_tokens
from .config import MemoryProviderConfig
from .documents import document_text
from .keyword_indexes import KeywordIndexes
from .kv_banks import KVBanks
from .query import MAX_CHUNKS_LIMIT, QueryParams, SearchMode, apply_threshold, parse_query_params, weighted_fusion
from .types import Filters, ScoredChunk, StoredChunk, Vectors, VectorStore, normalise

log = logging.getLogger(__name__)

HYBRID_CANDIDATES = 50
# Hybrid scores are HYBRID_VECTOR_WEIGHT * cosine + the rest * the share of the query's BM25 weight
# matched (query.weighted_fusion). Chosen on benchmarks/data/retrieval_hard.json (see
# benchmarks/bench_retrieval_quality.py): hybrid is the mode no kind of question falls below 0.8 in,
# so a query that names no mode gets it.
HYBRID_VECTOR_WEIGHT = 0.6
DEFAULT_VECTOR_BANK_MODE: SearchMode = "hybrid"


class MemoryEngine:
    """Implements Memory and MemoryBankOwner. Banks are keyed by their provider_resource_id."""

    def __init__(
        self, vectors: VectorStore, kv: KVStore, inference: Any, config: MemoryProviderConfig, outbound: OutboundPolicy
    ) -> None:
        self.vectors = vectors
        self.outbound = outbound
        self.kv_store = kv
        self.kv = KVBanks(kv)
        self.inference = inference
        self.config = config.ingestion
        self.index = config.index  # the provider's default index; a bank may choose its own
        self.banks: dict[str, MemoryBank] = {}
        self.aliases: dict[str, str] = {}  # identifier -> provider_resource_id
        self.write_locks: dict[str, asyncio.Lock] = {}
        self.vector_keyword = KeywordIndexes(kv, "vector")

    # --- banks --------------------------------------------------------------------------------

    async def register_memory_bank(self, bank: MemoryBank) -> MemoryBank:
        bank_id = bank.provider_resource_id
        if isinstance(bank, VectorMemoryBank):
            check_chunking(bank.chunk_size_in_tokens, bank.overlap_size_in_tokens or 0)
            # The index kind first: one the backend lacks is a 400 before anything is created.
            self.vectors.choose_index(bank_id, self.index.for_bank(bank.index))
            dimension = bank.embedding_dimension or len((await self._embed(bank, ["dimension probe"]))[0])
            await self.vectors.open_bank(bank_id, dimension)
            bank = bank.model_copy(update={"embedding_dimension": dimension})
        elif isinstance(bank, KeywordMemoryBank):
            await self.kv.open_keyword_bank(bank_id)
        elif not isinstance(bank, KeyValueMemoryBank):
            raise NotImplementedYet(f"{bank.memory_bank_type} memory banks are not supported by this provider")
        self.banks[bank_id] = bank
        self.aliases[bank.identifier] = bank_id
        self.vector_keyword.forget(bank_id)
        return bank

    async def unregister_memory_bank(self, bank_id: str) -> None:
        resource_id = self.aliases.pop(bank_id, bank_id)
        if resource_id in self.aliases.values():
            return  # another registered name still uses this bank's data
        bank = self.banks.pop(resource_id, None)
        if isinstance(bank, VectorMemoryBank):
            await self.vectors.drop_bank(resource_id)
            await self.vector_keyword.dropped(resource_id)
        elif bank is not None:
            await self.kv.drop_bank(resource_id)

    def _bank(self, bank_id: str) -> MemoryBank:
        bank = self.banks.get(bank_id)
        if bank is None:
            raise MemoryBankNotFound(bank_id)
        return bank

    async def shutdown(self) -> None:
        await self.vectors.close()
        await self.kv_store.close()

    # --- insert -------------------------------------------------------------------------------

    async def insert_documents(self, request: InsertDocumentsRequest) -> None:
        bank = self._bank(request.bank_id)
        ids = [document.document_id for document in request.documents]
        duplicates = sorted(i for i, count in Counter(ids).items() if count > 1)
        if duplicates:
            raise InvalidRequest(f"document_id {', '.join(map(repr, duplicates))} appears more than once in one insert")
        loaded = await asyncio.gather(
            *(document_text(document, self.config, self.outbound) for document in request.documents),
            return_exceptions=True,
        )
        for outcome in loaded:
            if isinstance(outcome, BaseException):
                raise outcome
        texts = [text for text in loaded if isinstance(text, str)]
        documents = await asyncio.to_thread(self._chunk_all, bank, request, texts)
        if not isinstance(bank, VectorMemoryBank):
            async with self._write_lock(bank):
                await self.kv.write(bank.provider_resource_id, documents)
            return
        chunks = [chunk for document in documents for chunk in document]
        vectors = await self._embed(bank, [chunk.content for chunk in chunks])
        # Only the write is serialised per bank: concurrent inserts embed in parallel.
        async with self._write_lock(bank):
            await self.vectors.replace_documents(bank.provider_resource_id, ids, chunks, vectors)
            await self.vector_keyword.wrote(bank.provider_resource_id, ids, chunks)

    async def delete_documents(self, request: DeleteDocumentsRequest) -> None:
        bank = self._bank(request.bank_id)
        if not isinstance(bank, VectorMemoryBank):
            raise NotImplementedYet(f"documents can be deleted from vector banks only; '{bank.identifier}' is not one")
        nothing = np.zeros((0, bank.embedding_dimension or 0), dtype=np.float32)
        async with self._write_lock(bank):
            await self.vectors.replace_documents(bank.provider_resource_id, request.document_ids, [], nothing)
            await self.vector_keyword.wrote(bank.provider_resource_id, request.document_ids, [])

    def _write_lock(self, bank: MemoryBank) -> asyncio.Lock:
        return self.write_locks.setdefault(bank.provider_resource_id, asyncio.Lock())

    def _chunk_all(
        self, bank: MemoryBank, request: InsertDocumentsRequest, texts: list[str]
    ) -> list[list[StoredChunk]]:
        documents: list[list[StoredChunk]] = []
        for document, text in zip(request.documents, texts, strict=True):
            if isinstance(bank, VectorMemoryBank):
                pieces = chunk_text(text, bank.chunk_size_in_tokens, bank.overlap_size_in_tokens or 0)
            elif isinstance(bank, KeywordMemoryBank):
                size, overlap = self.config.keyword_chunk_size_in_tokens, self.config.keyword_overlap_size_in_tokens
                pieces = chunk_text(text, size, min(overlap, size - 1))
            else:
                pieces = []
            chunks = [
                StoredChunk(document.document_id, index, piece.text, piece.token_count, dict(document.metadata))
                for index, piece in enumerate(pieces)
            ] or [StoredChunk(document.document_id, 0, text, count_tokens(text), dict(document.metadata))]
            documents.append(chunks)
        return documents

    async def _embed(self, bank: VectorMemoryBank, texts: list[str]) -> Vectors:
        batch = self.config.embedding_batch_size
        rows: list[list[float]] = []
        for start in range(0, len(texts), batch):
            contents: list[Any] = list(texts[start : start + batch])
            response = await self.inference.embeddings(
                EmbeddingsRequest(model_id=bank.embedding_model, contents=contents)
            )
            rows.extend(response.embeddings)
        if len(rows) != len(texts):
            raise UpstreamError(
                f"embedding model '{bank.embedding_model}' returned {len(rows)} vectors for {len(texts)} texts"
            )
        expected = bank.embedding_dimension
        for row in rows:
            if expected is not None and len(row) != expected:
                raise InvalidRequest(
                    f"embedding model '{bank.embedding_model}' returned {len(row)}-dimensional vectors, but memory "
                    f"bank '{bank.identifier}' holds {expected}-dimensional ones; register the bank with a model "
                    f"of dimension {expected}"
                )
        return normalise(np.asarray(rows, dtype=np.float32).reshape(len(rows), -1))

    # --- query --------------------------------------------------------------------------------

    async def query_documents(self, request: QueryDocumentsRequest) -> QueryDocumentsResponse:
        bank = self._bank(request.bank_id)
        params = parse_query_params(request.params)
        if content_has_image(request.query):
            raise InvalidRequest("memory queries are text only; remove the image content")
        text = content_text(request.query).strip()
        if not text:
            raise InvalidRequest("the query is empty")
        results = await self._search(bank, text, params)
        kept = apply_threshold(results, params.score_threshold, params.max_chunks)
        return QueryDocumentsResponse(
            chunks=[
                Chunk(
                    content=r.chunk.content,
                    token_count=r.chunk.token_count,
                    document_id=r.chunk.document_id,
                    metadata=r.chunk.metadata,
                )
                for r in kept
            ],
            scores=[float(r.score) for r in kept],
        )

    async def _search(self, bank: MemoryBank, text: str, params: QueryParams) -> list[ScoredChunk]:
        bank_id, k, filters = bank.provider_resource_id, params.max_chunks, params.scalar_filters
        if isinstance(bank, KeyValueMemoryBank):
            if params.mode not in (None, "keyword"):
                raise InvalidRequest(f"key-value bank '{bank.identifier}' is queried by key; mode must be unset")
            return await self.kv.lookup(bank_id, text, filters)
        if isinstance(bank, KeywordMemoryBank):
            if params.mode not in (None, "keyword"):
                raise InvalidRequest(f"keyword bank '{bank.identifier}' has no vectors; use mode 'keyword'")
            return await self.kv.keyword_search(bank_id, text, k, filters)
        if not isinstance(bank, VectorMemoryBank):
            raise NotImplementedYet(f"{bank.memory_bank_type} memory banks are not supported by this provider")
        mode = params.mode or DEFAULT_VECTOR_BANK_MODE
        if mode == "keyword":
            return (await self._keyword_search(bank_id, text, k, filters))[0]
        if mode == "vector":
            return await self._vector_search(bank, text, k, filters)
        depth = min(MAX_CHUNKS_LIMIT, max(k * 5, HYBRID_CANDIDATES))
        # The two sides overlap: while the embedding and the vector search wait on a worker thread
        # (or the network), the event loop reads the replica counter and runs the BM25 search.
        by_vector, (by_keyword, ceiling) = await asyncio.gather(
            self._vector_search(bank, text, depth, filters), self._keyword_search(bank_id, text, depth, filters)
        )
        return weighted_fusion(by_vector, by_keyword, ceiling, HYBRID_VECTOR_WEIGHT, limit=k)

    async def _vector_search(self, bank: VectorMemoryBank, text: str, k: int, filters: Filters) -> list[ScoredChunk]:
        query_vector = await self._embed(bank, [text])
        return await self.vectors.search(bank.provider_resource_id, query_vector, k, filters)

    async def _keyword_search(
        self, bank_id: str, text: str, k: int, filters: Filters
    ) -> tuple[list[ScoredChunk], float]:
        """The BM25 ranking and the query's ceiling (what weighted_fusion divides BM25 scores by)."""
        return await self.vector_keyword.search(
            bank_id,
            lambda: self.vectors.all_chunks(bank_id),
            lambda document_ids: self.vectors.document_chunks(bank_id, document_ids),
            lambda index: index.search_with_ceiling(text, k, filters),
        )
