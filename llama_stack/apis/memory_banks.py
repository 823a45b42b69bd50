"""Memory banks registry API: vector, keyword and key-value banks."""

from __future__ import annotations

from typing import Annotated, Literal, Protocol

from pydantic import Field

from llama_stack.apis.common import WireModel
from llama_stack.apis.resource import Resource

IndexKind = Literal["auto", "exact", "hnsw", "ivf"]
"""A vector bank's index: exact scans, approximate HNSW or IVF, or `auto` (exact while small)."""


class VectorMemoryBankParams(WireModel):
    memory_bank_type: Literal["vector"] = "vector"
    embedding_model: str
    chunk_size_in_tokens: int = Field(gt=0)
    overlap_size_in_tokens: int | None = Field(default=None, ge=0)
    index: IndexKind | None = Field(default=None, description="the bank's index; default: the provider's")


class KeywordMemoryBankParams(WireModel):
    memory_bank_type: Literal["keyword"] = "keyword"


class KeyValueMemoryBankParams(WireModel):
    memory_bank_type: Literal["keyvalue"] = "keyvalue"


class GraphMemoryBankParams(WireModel):
    memory_bank_type: Literal["graph"] = "graph"


BankParams = Annotated[
    VectorMemoryBankParams | KeywordMemoryBankParams | KeyValueMemoryBankParams | GraphMemoryBankParams,
    Field(discriminator="memory_bank_type"),
]


class _Bank(Resource):
    type: Literal["memory_bank"] = "memory_bank"


class VectorMemoryBank(_Bank):
    memory_bank_type: Literal["vector"] = "vector"
    embedding_model: str
    chunk_size_in_tokens: int
    embedding_dimension: int | None = 384
    overlap_size_in_tokens: int | None = None
    index: IndexKind | None = None


class KeywordMemoryBank(_Bank):
    memory_bank_type: Literal["keyword"] = "keyword"


class KeyValueMemoryBank(_Bank):
    memory_bank_type: Literal["keyvalue"] = "keyvalue"


class GraphMemoryBank(_Bank):
    memory_bank_type: Literal["graph"] = "graph"


MemoryBank = Annotated[
    VectorMemoryBank | KeywordMemoryBank | KeyValueMemoryBank | GraphMemoryBank,
    Field(discriminator="memory_bank_type"),
]


class RegisterMemoryBankRequest(WireModel):
    memory_bank_id: str = Field(min_length=1)
    params: BankParams
    provider_id: str | None = None
    provider_memory_bank_id: str | None = None


class UnregisterMemoryBankRequest(WireModel):
    memory_bank_id: str


class MemoryBanks(Protocol):
    async def list_memory_banks(self) -> list[MemoryBank]: ...
    async def get_memory_bank(self, memory_bank_id: str) -> MemoryBank | None: ...
    async def register_memory_bank(self, request: RegisterMemoryBankRequest) -> MemoryBank: ...
    async def unregister_memory_bank(self, memory_bank_id: str) -> None: ...


class MemoryBankOwner(Protocol):
    async def register_memory_bank(self, bank: MemoryBank) -> None: ...
    async def unregister_memory_bank(self, bank_id: str) -> None: ...
