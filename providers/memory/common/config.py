"""Settings every memory provider shares (pure pydantic: cheap to import)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from llama_stack.distribution.store.api import KVStoreConfig, SqliteKVStoreConfig

DEFAULT_STATE_DIR = "~/.llama/distributions/memory"


class IngestionConfig(BaseModel):
    """How documents are fetched, bounded and split."""

    model_config = ConfigDict(extra="forbid")

    max_document_bytes: int = Field(
        default=10 * 1024 * 1024, gt=0, description="largest document (fetched body or inline text) accepted"
    )
    fetch_timeout_s: float = Field(default=30.0, gt=0, description="timeout for fetching a document's http(s) URL")
    keyword_chunk_size_in_tokens: int = Field(default=256, gt=0, description="chunk size of keyword banks")
    keyword_overlap_size_in_tokens: int = Field(default=32, ge=0, description="chunk overlap of keyword banks")
    embedding_batch_size: int = Field(default=256, gt=0, description="chunks sent per embeddings request")


class MemoryProviderConfig(BaseModel):
    """The base of every memory provider's config. `kvstore` keeps keyword and key-value banks."""

    model_config = ConfigDict(extra="forbid")

    ingestion: IngestionConfig = Field(default_factory=IngestionConfig)
    kvstore: KVStoreConfig | None = Field(
        default=None, description="store of keyword and key-value banks; default: a sqlite file of this provider"
    )

    def default_kvstore_path(self) -> Path:
        return Path(DEFAULT_STATE_DIR).expanduser() / f"{type(self).__name__.lower()}-kv.db"

    def resolved_kvstore(self) -> KVStoreConfig:
        if self.kvstore is not None:
            return self.kvstore
        return SqliteKVStoreConfig(db_path=str(self.default_kvstore_path()), namespace="memory")
