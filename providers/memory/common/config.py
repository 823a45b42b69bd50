"""Settings every memory provider shares (pure pydantic: cheap to import)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from llama_stack.apis.memory_banks import IndexKind
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


class VectorIndexConfig(BaseModel):
    """The index of this provider's vector banks; a bank may choose its own kind at registration.
    `exact` scans every vector; `hnsw` and `ivf` are approximate; `auto` is exact until the bank
    holds `auto_threshold` chunks and approximate past it, so small banks keep exact answers."""

    model_config = ConfigDict(extra="forbid")

    kind: IndexKind = Field(default="auto", description="index of banks registered without `index`")
    auto_threshold: int = Field(default=20_000, gt=0, description="chunks past which an `auto` bank goes approximate")
    hnsw_m: int = Field(default=32, ge=4, le=128, description="HNSW links per node (memory grows with it)")
    hnsw_ef_construction: int = Field(default=64, ge=8, description="HNSW candidates kept while inserting")
    hnsw_ef_search: int = Field(
        default=128,
        ge=8,
        description="HNSW candidates kept per query (raised to k); FAISS uses this default, pgvector uses "
        "max(48, 4 x k) unless it is set",
    )
    ivf_lists: int = Field(
        default=0, ge=0, description="IVF clusters; 0: about 2 x sqrt(chunks), retrained as the bank grows"
    )
    ivf_probe: int = Field(
        default=0, ge=0, description="IVF clusters scanned per query; 0: 5.5 x sqrt(lists), at least 16"
    )

    def for_bank(self, kind: IndexKind | None) -> VectorIndexConfig:
        """These settings with the bank's own kind, when it chose one."""
        return self if kind is None else self.model_copy(update={"kind": kind})


class MemoryProviderConfig(BaseModel):
    """The base of every memory provider's config. `kvstore` keeps keyword and key-value banks."""

    model_config = ConfigDict(extra="forbid")

    ingestion: IngestionConfig = Field(default_factory=IngestionConfig)
    kvstore: KVStoreConfig | None = Field(
        default=None, description="store of keyword and key-value banks; default: a sqlite file of this provider"
    )
    index: VectorIndexConfig = Field(
        default_factory=VectorIndexConfig, description="vector index of banks that do not choose their own"
    )

    def default_kvstore_path(self) -> Path:
        return Path(DEFAULT_STATE_DIR).expanduser() / f"{type(self).__name__.lower()}-kv.db"

    def resolved_kvstore(self) -> KVStoreConfig:
        if self.kvstore is not None:
            return self.kvstore
        return SqliteKVStoreConfig(db_path=str(self.default_kvstore_path()), namespace="memory")
