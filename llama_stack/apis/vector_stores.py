"""Vector stores in OpenAI's shape (`/v1/vector_stores`): a second view of a vector memory bank.
A vector store is a bank whose documents are uploaded files; searching it is a bank query."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Protocol

from pydantic import Field, model_validator

from llama_stack.apis.common import WireModel
from llama_stack.apis.errors import NotFound

AttributeValue = str | float | bool
Attributes = dict[str, AttributeValue]
SearchMode = Literal["vector", "keyword", "hybrid"]

# "auto" chunking: chunks small enough for a sentence-embedding model's window (MiniLM reads 256
# word pieces), with a quarter of each chunk repeated in the next.
AUTO_CHUNK_TOKENS = 512
AUTO_OVERLAP_TOKENS = 128


class VectorStoreNotFound(NotFound):
    def __init__(self, vector_store_id: str) -> None:
        super().__init__(f"No such vector store: '{vector_store_id}'.")


class VectorStoreFileNotFound(NotFound):
    def __init__(self, vector_store_id: str, file_id: str) -> None:
        super().__init__(f"No file '{file_id}' in vector store '{vector_store_id}'.")


class FileBatchNotFound(NotFound):
    def __init__(self, vector_store_id: str, batch_id: str) -> None:
        super().__init__(f"No file batch '{batch_id}' in vector store '{vector_store_id}'.")


# --- chunking -------------------------------------------------------------------------------


class StaticChunking(WireModel):
    max_chunk_size_tokens: int = Field(ge=100, le=4096)
    chunk_overlap_tokens: int = Field(ge=0)

    @model_validator(mode="after")
    def _overlap_at_most_half(self) -> StaticChunking:
        if self.chunk_overlap_tokens > self.max_chunk_size_tokens // 2:
            raise ValueError("chunk_overlap_tokens must not exceed half of max_chunk_size_tokens")
        return self


class StaticChunkingStrategy(WireModel):
    type: Literal["static"] = "static"
    static: StaticChunking


class AutoChunkingStrategy(WireModel):
    type: Literal["auto"] = "auto"


ChunkingStrategy = Annotated[AutoChunkingStrategy | StaticChunkingStrategy, Field(discriminator="type")]


def static_of(strategy: ChunkingStrategy | None) -> StaticChunkingStrategy:
    """The chunk size and overlap a strategy stands for ("auto" included)."""
    if isinstance(strategy, StaticChunkingStrategy):
        return strategy
    return StaticChunkingStrategy(
        static=StaticChunking(max_chunk_size_tokens=AUTO_CHUNK_TOKENS, chunk_overlap_tokens=AUTO_OVERLAP_TOKENS)
    )


# --- filters --------------------------------------------------------------------------------


class ComparisonFilter(WireModel):
    type: Literal["eq", "ne", "gt", "gte", "lt", "lte", "in", "nin"]
    key: str = Field(min_length=1)
    value: AttributeValue | list[AttributeValue]


class CompoundFilter(WireModel):
    type: Literal["and", "or"]
    filters: list[ComparisonFilter | CompoundFilter] = Field(min_length=1)


Filter = ComparisonFilter | CompoundFilter


# --- objects --------------------------------------------------------------------------------


class FileCounts(WireModel):
    in_progress: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    total: int = 0


class ExpiresAfter(WireModel):
    anchor: Literal["last_active_at"]
    days: int = Field(ge=1, le=365)


class VectorStore(WireModel):
    id: str
    object: Literal["vector_store"] = "vector_store"
    created_at: int
    name: str
    usage_bytes: int = 0
    file_counts: FileCounts = Field(default_factory=FileCounts)
    status: Literal["expired", "in_progress", "completed"] = "completed"
    expires_after: ExpiresAfter | None = None
    expires_at: int | None = None
    last_active_at: int | None = None
    metadata: dict[str, str] = Field(default_factory=dict)


class LastError(WireModel):
    code: Literal["server_error", "unsupported_file", "invalid_file"]
    message: str


class VectorStoreFile(WireModel):
    id: str
    object: Literal["vector_store.file"] = "vector_store.file"
    created_at: int
    vector_store_id: str
    status: Literal["in_progress", "completed", "cancelled", "failed"]
    usage_bytes: int = 0
    last_error: LastError | None = None
    attributes: Attributes = Field(default_factory=dict)
    chunking_strategy: ChunkingStrategy | None = None


class VectorStoreFileBatch(WireModel):
    id: str
    object: Literal["vector_store.files_batch"] = "vector_store.files_batch"
    created_at: int
    vector_store_id: str
    status: Literal["in_progress", "completed", "cancelled", "failed"]
    file_counts: FileCounts


class SearchContent(WireModel):
    type: Literal["text"] = "text"
    text: str


class SearchResult(WireModel):
    file_id: str
    filename: str
    score: float
    attributes: Attributes = Field(default_factory=dict)
    content: list[SearchContent]


class SearchPage(WireModel):
    object: Literal["vector_store.search_results.page"] = "vector_store.search_results.page"
    search_query: list[str]
    data: list[SearchResult]
    has_more: bool = False
    next_page: str | None = None


class Page(WireModel):
    """OpenAI's list envelope, for vector stores and their files."""

    object: Literal["list"] = "list"
    data: list[Any]
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool = False


# --- requests -------------------------------------------------------------------------------


class CreateVectorStoreRequest(WireModel):
    name: str = ""
    file_ids: list[str] = Field(default_factory=list)
    chunking_strategy: ChunkingStrategy | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    expires_after: ExpiresAfter | None = None
    # Extra body fields (not in OpenAI's API): which embedding model and memory provider to use.
    embedding_model: str | None = None
    embedding_dimension: int | None = Field(default=None, gt=0)
    provider_id: str | None = None


class UpdateVectorStoreRequest(WireModel):
    name: str | None = None
    metadata: dict[str, str] | None = None
    expires_after: ExpiresAfter | None = None


class AttachFileRequest(WireModel):
    file_id: str = Field(min_length=1)
    attributes: Attributes = Field(default_factory=dict)
    chunking_strategy: ChunkingStrategy | None = None


class UpdateFileRequest(WireModel):
    attributes: Attributes


class CreateFileBatchRequest(WireModel):
    file_ids: list[str] = Field(min_length=1, max_length=500)
    attributes: Attributes = Field(default_factory=dict)
    chunking_strategy: ChunkingStrategy | None = None


class RankingOptions(WireModel):
    ranker: Literal["none", "auto", "default-2024-11-15"] | None = None
    score_threshold: float | None = Field(default=None, ge=0.0, le=1.0)


class SearchRequest(WireModel):
    query: str | list[str]
    filters: Filter | None = None
    max_num_results: int = Field(default=10, ge=1, le=50)
    ranking_options: RankingOptions | None = None
    rewrite_query: bool = False
    # None: the bank's default (hybrid on every vector backend, see providers/memory/common/engine.py).
    search_mode: SearchMode | None = None


class ListRequest(WireModel):
    limit: int = Field(default=20, ge=1, le=100)
    order: Literal["asc", "desc"] = "desc"
    after: str | None = None
    before: str | None = None


class ListFilesRequest(ListRequest):
    filter: Literal["in_progress", "completed", "failed", "cancelled"] | None = None


class VectorStores(Protocol):
    async def create(self, request: CreateVectorStoreRequest) -> VectorStore: ...
    async def list_stores(self, request: ListRequest) -> Page: ...
    async def get(self, vector_store_id: str) -> VectorStore: ...
    async def update(self, vector_store_id: str, request: UpdateVectorStoreRequest) -> VectorStore: ...
    async def delete(self, vector_store_id: str) -> dict[str, Any]: ...
    async def search(self, vector_store_id: str, request: SearchRequest) -> SearchPage: ...
    async def attach_file(self, vector_store_id: str, request: AttachFileRequest) -> VectorStoreFile: ...
    async def list_files(self, vector_store_id: str, request: ListFilesRequest) -> Page: ...
    async def get_file(self, vector_store_id: str, file_id: str) -> VectorStoreFile: ...
    async def update_file(self, vector_store_id: str, file_id: str, request: UpdateFileRequest) -> VectorStoreFile: ...
    async def detach_file(self, vector_store_id: str, file_id: str) -> dict[str, Any]: ...
    async def create_file_batch(
        self, vector_store_id: str, request: CreateFileBatchRequest
    ) -> VectorStoreFileBatch: ...
    async def get_file_batch(self, vector_store_id: str, batch_id: str) -> VectorStoreFileBatch: ...
    async def list_batch_files(self, vector_store_id: str, batch_id: str, request: ListFilesRequest) -> Page: ...
