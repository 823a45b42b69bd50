"""An inline::faiss provider fed by a hashing embedder, for the durability tests.

The embedder stands in for the inference router at its boundary: a deterministic 64-dimensional
bag of hashed words. Durability does not depend on what vectors mean, and the process that the
tests kill must start in a fraction of a second (no torch)."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

from llama_stack.apis.common import content_text
from llama_stack.apis.inference import EmbeddingsRequest, EmbeddingsResponse
from llama_stack.apis.memory import InsertDocumentsRequest, QueryDocumentsRequest
from llama_stack.apis.memory_banks import VectorMemoryBank
from llama_stack.distribution.provider import Api, Deps
from llama_stack.distribution.store import kvstore_from_config
from llama_stack.providers.memory.faiss import FaissMemoryConfig, get_provider_impl

DIMENSION = 64
BANK = "durable"


class HashingEmbedder:
    async def embeddings(self, request: EmbeddingsRequest) -> EmbeddingsResponse:
        vectors = []
        for content in request.contents:
            vector = [0.0] * DIMENSION
            for word in content_text(content).lower().split():
                vector[int(hashlib.md5(word.encode()).hexdigest(), 16) % DIMENSION] += 1.0
            norm = math.sqrt(sum(x * x for x in vector)) or 1.0
            vectors.append([x / norm for x in vector])
        return EmbeddingsResponse(embeddings=vectors)


async def open_faiss(state: Path, chunk_size: int = 64) -> Any:
    config = FaissMemoryConfig(
        persist_dir=str(state / "faiss"),
        kvstore={"type": "sqlite", "db_path": str(state / "kv.db")},
    )
    kv = await kvstore_from_config(config.resolved_kvstore())
    provider = await get_provider_impl(config, Deps({Api.inference: HashingEmbedder()}, kvstore=kv))
    bank = VectorMemoryBank(
        identifier=BANK,
        provider_resource_id=BANK,
        provider_id="faiss",
        embedding_model="hashing",
        chunk_size_in_tokens=chunk_size,
        overlap_size_in_tokens=0,
        embedding_dimension=DIMENSION,
    )
    await provider.register_memory_bank(bank)
    return provider


async def insert(provider: Any, document_id: str, text: str, **metadata: Any) -> None:
    document = {"document_id": document_id, "content": text, "metadata": metadata}
    await provider.insert_documents(InsertDocumentsRequest.model_validate({"bank_id": BANK, "documents": [document]}))


async def find(provider: Any, text: str, **params: Any) -> list[tuple[str, str]]:
    request = QueryDocumentsRequest(bank_id=BANK, query=text, params=params)
    response = await provider.query_documents(request)
    return [(chunk.document_id, str(chunk.content)) for chunk in response.chunks]


def log_file(state: Path) -> Path:
    (path,) = (state / "faiss" / "banks").glob("*/log")
    return path
