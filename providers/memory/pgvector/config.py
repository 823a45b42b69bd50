"""Configuration of remote::pgvector (pure pydantic: cheap to import)."""

from __future__ import annotations

from pydantic import Field

from llama_stack.distribution.store.api import KVStoreConfig, PostgresKVStoreConfig

from ..common.config import MemoryProviderConfig


class PgVectorMemoryConfig(MemoryProviderConfig):
    dsn: str = Field(description="libpq connection string, e.g. postgresql://user:pass@host:5432/db")
    table_prefix: str = Field(
        default="llamastack_memory",
        pattern=r"^[a-z_][a-z0-9_]{0,30}$",
        description="prefix of this provider's tables (<prefix>_banks, one <prefix>_<hash> per bank)",
    )
    hnsw: bool = Field(
        default=True, description="false: banks without their own `index` scan exactly (index.kind 'exact')"
    )
    staging_max_rows: int = Field(
        default=1000,
        ge=0,
        description="rows added to a bank that has its HNSW graph wait in a staging table, searched exactly, "
        "until a background task merges them into the graph; past this many an insert waits for the merge "
        "(0: every row goes into the graph within its insert)",
    )
    pool_max_size: int = Field(default=10, ge=1)
    connection_wait_s: float = Field(
        default=1.5,
        gt=0,
        description="longest wait for a connection from the pool; past it (Postgres down, or every connection "
        "busy) a request answers 503 at once instead of queueing",
    )

    def resolved_kvstore(self) -> KVStoreConfig:
        if self.kvstore is not None:
            return self.kvstore
        return PostgresKVStoreConfig(dsn=self.dsn, table_name=f"{self.table_prefix}_kv")
