"""Memory API: insert documents into a bank and query them."""

from __future__ import annotations

from typing import Protocol

from pydantic import Field

from llama_stack.apis.common import URL, InterleavedContent, JsonValue, WireModel


class MemoryBankDocument(WireModel):
    document_id: str = Field(min_length=1)
    content: InterleavedContent | URL
    mime_type: str | None = None
    metadata: dict[str, JsonValue] = Field(default_factory=dict)


class InsertDocumentsRequest(WireModel):
    bank_id: str
    documents: list[MemoryBankDocument] = Field(min_length=1)
    ttl_seconds: int | None = None


class QueryDocumentsRequest(WireModel):
    bank_id: str
    query: InterleavedContent
    params: dict[str, JsonValue] = Field(default_factory=dict)


class Chunk(WireModel):
    content: InterleavedContent
    token_count: int
    document_id: str
    # Not in v0.0.63 (its client ignores it): the metadata of the chunk's document.
    metadata: dict[str, JsonValue] = Field(default_factory=dict)


class QueryDocumentsResponse(WireModel):
    chunks: list[Chunk]
    scores: list[float]


class DeleteDocumentsRequest(WireModel):
    """Not in v0.0.63 (it could only replace a document): removing files from a vector store needs it."""

    bank_id: str
    document_ids: list[str] = Field(min_length=1)


class Memory(Protocol):
    async def insert_documents(self, request: InsertDocumentsRequest) -> None: ...
    async def query_documents(self, request: QueryDocumentsRequest) -> QueryDocumentsResponse: ...
    async def delete_documents(self, request: DeleteDocumentsRequest) -> None: ...
