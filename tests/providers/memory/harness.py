"""Build stacks for the memory contract suite: a real inline::sentence-transformers provider with
all-MiniLM-L6-v2 (384 dimensions) and one memory provider, from a run config dict, as a server would."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llama_stack.apis.memory import InsertDocumentsRequest, QueryDocumentsRequest, QueryDocumentsResponse
from llama_stack.apis.memory_banks import RegisterMemoryBankRequest
from llama_stack.distribution.provider import Api
from llama_stack.distribution.registry import install_provider
from llama_stack.distribution.resolver import Stack, build_stack
from llama_stack.distribution.spec import parse_run_config
from llama_stack.providers.memory import chroma, faiss, pgvector, qdrant, sqlite_vec

MINILM = "all-MiniLM-L6-v2"
PROVIDERS = ("faiss", "sqlite-vec", "pgvector", "chromadb", "qdrant")
SPECS = {
    "faiss": faiss.provider_spec,
    "sqlite-vec": sqlite_vec.provider_spec,
    "pgvector": pgvector.provider_spec,
    "chromadb": chroma.provider_spec,
    "qdrant": qdrant.provider_spec,
}
# Small, so that "over the limit" is cheap to test; every stack of the suite uses it.
MAX_DOCUMENT_BYTES = 20_000


def install_memory_providers() -> None:
    """Until pyproject.toml lists their entry points, make the memory providers known in-process."""
    for spec in (*SPECS.values(), qdrant.remote_provider_spec):
        install_provider(spec)


@dataclass
class Servers:
    """Addresses of the servers a provider needs; each is started only when first asked for."""

    postgres_dsn: Callable[[], str]
    chroma_url: Callable[[], str]


def provider_config(name: str, state: Path, servers: Servers, ingestion: dict[str, Any]) -> dict[str, Any]:
    kv = {"type": "sqlite", "db_path": str(state / "kv.db")}
    tag = "t" + hashlib.sha256(str(state).encode()).hexdigest()[:12]  # isolates stacks sharing a server
    common: dict[str, Any] = {"ingestion": {"max_document_bytes": MAX_DOCUMENT_BYTES, **ingestion}}
    if name == "faiss":
        return {**common, "persist_dir": str(state / "faiss"), "kvstore": kv}
    if name == "sqlite-vec":
        return {**common, "db_path": str(state / "vectors.db"), "kvstore": kv}
    if name == "pgvector":
        return {**common, "dsn": servers.postgres_dsn(), "table_prefix": tag}
    if name == "chromadb":
        return {**common, "url": servers.chroma_url(), "collection_prefix": tag, "kvstore": kv}
    if name == "qdrant":
        return {**common, "path": str(state / "qdrant"), "kvstore": kv}
    raise ValueError(f"unknown memory provider {name}")


def run_config(name: str, state: Path, servers: Servers, ingestion: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "version": 2,
        "image_name": "memory-contract",
        "providers": {
            "inference": [
                {"provider_id": "st", "provider_type": "inline::sentence-transformers", "config": {"device": "cpu"}}
            ],
            "memory": [
                {
                    "provider_id": "memory",
                    "provider_type": SPECS[name].provider_type,
                    "config": provider_config(name, state, servers, ingestion or {}),
                }
            ],
        },
        "metadata_store": {"type": "sqlite", "db_path": str(state / "registry.db")},
        # The suite's documents are served on loopback, which the server refuses unless allowed.
        "server": {"outbound": {"allow": ["127.0.0.1"]}},
        "models": [
            {
                "model_id": MINILM,
                "model_type": "embedding",
                "provider_id": "st",
                "metadata": {"embedding_dimension": 384},
            }
        ],
    }


class MemoryHarness:
    """A built stack and the calls a client makes, through the routers."""

    def __init__(self, name: str, stack: Stack) -> None:
        self.name = name
        self.stack = stack

    @classmethod
    async def start(
        cls, name: str, state: Path, servers: Servers, ingestion: dict[str, Any] | None = None
    ) -> MemoryHarness:
        config = parse_run_config(run_config(name, state, servers, ingestion), env={})
        return cls(name, await build_stack(config))

    @property
    def memory(self) -> Any:
        return self.stack.routers[Api.memory]

    @property
    def provider(self) -> Any:
        return self.stack.memory_banks.providers["memory"]

    async def register(self, params: dict[str, Any], bank_id: str | None = None) -> str:
        bank_id = bank_id or f"bank-{uuid.uuid4().hex[:10]}"
        request = RegisterMemoryBankRequest.model_validate({"memory_bank_id": bank_id, "params": params})
        await self.stack.memory_banks.register_memory_bank(request)
        return bank_id

    async def vector_bank(self, chunk_size: int = 128, overlap: int = 16, bank_id: str | None = None) -> str:
        params = {
            "memory_bank_type": "vector",
            "embedding_model": MINILM,
            "chunk_size_in_tokens": chunk_size,
            "overlap_size_in_tokens": overlap,
        }
        return await self.register(params, bank_id)

    async def insert(self, bank_id: str, *documents: dict[str, Any]) -> None:
        request = InsertDocumentsRequest.model_validate({"bank_id": bank_id, "documents": list(documents)})
        await self.memory.insert_documents(request)

    async def query(self, bank_id: str, query: Any, **params: Any) -> QueryDocumentsResponse:
        request = QueryDocumentsRequest.model_validate({"bank_id": bank_id, "query": query, "params": params})
        response: QueryDocumentsResponse = await self.memory.query_documents(request)
        return response

    async def document_ids(self, bank_id: str, query: str, **params: Any) -> list[str]:
        return [chunk.document_id for chunk in (await self.query(bank_id, query, **params)).chunks]

    async def embed(self, texts: list[str]) -> list[list[float]]:
        from llama_stack.apis.inference import EmbeddingsRequest

        request = EmbeddingsRequest(model_id=MINILM, contents=list(texts))
        response = await self.stack.routers[Api.inference].embeddings(request)
        return list(response.embeddings)

    async def shutdown(self) -> None:
        await self.stack.shutdown()


def doc(document_id: str, content: Any, **metadata: Any) -> dict[str, Any]:
    return {"document_id": document_id, "content": content, "metadata": metadata}
