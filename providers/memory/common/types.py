"""What every memory backend stores and returns, and the one interface a vector backend implements.

Vectors reach a backend unit-normalised (float32), so inner product, cosine similarity and
1 - cosine distance all name the same score: every provider reports cosine similarity.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from llama_stack.apis.errors import InvalidRequest

from .config import VectorIndexConfig

Scalar = str | int | float | bool
Filters = dict[str, Scalar]
Vectors = NDArray[np.float32]


@dataclass(frozen=True)
class StoredChunk:
    """One chunk of one document, with the document's metadata (filters match on it)."""

    document_id: str
    chunk_index: int
    content: str
    token_count: int
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, int]:
        return (self.document_id, self.chunk_index)

    def to_dict(self) -> dict[str, Any]:
        return {
            "document_id": self.document_id,
            "chunk_index": self.chunk_index,
            "content": self.content,
            "token_count": self.token_count,
            "metadata": self.metadata,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StoredChunk:
        return cls(
            document_id=str(data["document_id"]),
            chunk_index=int(data["chunk_index"]),
            content=str(data["content"]),
            token_count=int(data["token_count"]),
            metadata=dict(data.get("metadata") or {}),
        )

    def metadata_json(self) -> str:
        return json.dumps(self.metadata, ensure_ascii=False, sort_keys=True)


@dataclass(frozen=True)
class ScoredChunk:
    chunk: StoredChunk
    score: float


def scalar_equal(stored: Any, wanted: Scalar) -> bool:
    """JSON equality of scalars: booleans equal only booleans, numbers compare by value (1 == 1.0)."""
    if isinstance(wanted, bool) or isinstance(stored, bool):
        return type(stored) is type(wanted) and stored == wanted
    if isinstance(wanted, int | float):
        return isinstance(stored, int | float) and stored == wanted
    return isinstance(stored, str) and stored == wanted


def matches(metadata: dict[str, Any], filters: Filters) -> bool:
    return all(key in metadata and scalar_equal(metadata[key], value) for key, value in filters.items())


def normalise(vectors: Vectors) -> Vectors:
    """Rows scaled to unit length (a zero row stays zero)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    result: Vectors = (vectors / norms).astype(np.float32, copy=False)
    return result


def require_kind(backend: str, index: VectorIndexConfig, offered: tuple[str, ...]) -> None:
    """InvalidRequest (400) when `backend` has no index of the kind a bank chose."""
    if index.kind not in offered:
        raise InvalidRequest(f"index '{index.kind}' is not available on {backend}; choose one of: {', '.join(offered)}")


class VectorStore(Protocol):
    """A vector backend. Bank ids are the provider's names for banks (any string): a backend maps
    them to its own safe names. Every method raises StackError subclasses only."""

    def choose_index(self, bank_id: str, index: VectorIndexConfig) -> None:
        """The index the next `open_bank` of this bank builds; InvalidRequest naming the kinds this
        backend offers when it has no such index."""
        ...

    async def open_bank(self, bank_id: str, dimension: int) -> None:
        """Create the bank, or reopen it with its data; InvalidRequest when it exists with another dimension."""
        ...

    async def drop_bank(self, bank_id: str) -> None:
        """Delete the bank and every chunk in it."""
        ...

    async def replace_documents(
        self, bank_id: str, document_ids: list[str], chunks: list[StoredChunk], vectors: Vectors
    ) -> None:
        """All at once or not at all: remove every chunk of `document_ids`, then store `chunks`
        (row i of `vectors` is chunk i's vector). Returns only once the write is durable."""
        ...

    async def search(self, bank_id: str, vector: Vectors, k: int, filters: Filters) -> list[ScoredChunk]:
        """The k chunks most similar to `vector` (one row) among those matching `filters`, best first."""
        ...

    async def all_chunks(self, bank_id: str) -> list[StoredChunk]:
        """Every chunk of the bank (keyword search builds its index from them)."""
        ...

    async def document_chunks(self, bank_id: str, document_ids: list[str]) -> list[StoredChunk]:
        """Every chunk of these documents (keyword search catches up with other processes' writes)."""
        ...

    async def close(self) -> None: ...
