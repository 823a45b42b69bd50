"""remote::pgvector: vector banks in Postgres with the pgvector extension (a table per bank,
transactional inserts, HNSW or exact cosine search). Keyword and key-value banks live in a
kvstore, by default a table of the same database."""

from __future__ import annotations

from typing import TYPE_CHECKING

from llama_stack.distribution.provider import Api, Deps, MemorySpec, ProviderSpec

from .config import PgVectorMemoryConfig

if TYPE_CHECKING:
    from ..common.engine import MemoryEngine


async def get_provider_impl(config: PgVectorMemoryConfig, deps: Deps) -> MemoryEngine:
    from ..common.engine import MemoryEngine
    from .store import PgVectorStore

    store = await PgVectorStore.from_config(config)
    return MemoryEngine(store, deps.kvstore, deps[Api.inference], config, deps.outbound)


provider_spec: MemorySpec[PgVectorMemoryConfig] = ProviderSpec(
    kvstore=PgVectorMemoryConfig.resolved_kvstore,
    api=Api.memory,
    provider_type="remote::pgvector",
    config_class=PgVectorMemoryConfig,
    factory=get_provider_impl,
    description="Vector banks in Postgres with pgvector (transactional inserts, HNSW or exact cosine search); "
    "keyword (BM25) and key-value banks in a kvstore",
    required_modules=("psycopg", "psycopg_pool", "pgvector", "numpy"),
    extra="pgvector",
    depends_on=(Api.inference,),
)

__all__ = ["PgVectorMemoryConfig", "get_provider_impl", "provider_spec"]
