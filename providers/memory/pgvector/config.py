"""Configuration of remote::pgvector (pure pydantic: cheap to import)."""

from __future__ import annotations

from pydantic import Field

from llama_stack.distribution.store.api import KVStoreConfig, PostgresKVStoreConfig

from ..common.config import MemoryProviderConfig

# Staged rows past which an insert waits for the merge. Each search scans the staged rows exactly:
# 0.5 / 1.0 / 2.0 ms for 500 / 1,000 / 2,000 rows of 384 dimensions here (EXPLAIN ANALYZE, load ~4),
# so at 1,000 a burst of inserts adds at most ~1 ms to the HNSW query's ~4 at 100k chunks. A steady
# stream of inserts slower than the merge (25-45 rows/s here) keeps only a batch or two staged.
DEFAULT_STAGING_MAX_ROWS = 1000


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
        default=DEFAULT_STAGING_MAX_ROWS,
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
