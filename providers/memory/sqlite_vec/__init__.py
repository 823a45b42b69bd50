"""inline::sqlite-vec: vector banks in one SQLite file with the sqlite-vec extension (exact cosine
KNN); every insert is one SQLite transaction. Keyword and key-value banks live in a kvstore."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from llama_stack.distribution.provider import Api, Deps, MemorySpec, ProviderSpec

from .config import SqliteVecMemoryConfig

if TYPE_CHECKING:
    from ..common.engine import MemoryEngine


async def get_provider_impl(config: SqliteVecMemoryConfig, deps: Deps) -> MemoryEngine:
    from ..common.engine import MemoryEngine
    from .store import SqliteVecStore

    store = await asyncio.to_thread(SqliteVecStore, config.db_path)
    return MemoryEngine(store, deps.kvstore, deps[Api.inference], config, deps.outbound)


provider_spec: MemorySpec[SqliteVecMemoryConfig] = ProviderSpec(
    kvstore=SqliteVecMemoryConfig.resolved_kvstore,
    api=Api.memory,
    provider_type="inline::sqlite-vec",
    config_class=SqliteVecMemoryConfig,
    factory=get_provider_impl,
    description="Vector banks in a SQLite file with sqlite-vec (exact cosine search, transactional inserts); "
    "keyword (BM25) and key-value banks in a kvstore",
    required_modules=("sqlite_vec", "numpy"),
    extra="sqlite-vec",
    depends_on=(Api.inference,),
)

__all__ = ["SqliteVecMemoryConfig", "get_provider_impl", "provider_spec"]
