"""inline::qdrant and remote::qdrant: vector banks as Qdrant collections (cosine), in qdrant-client's
local mode or on a Qdrant server. Keyword and key-value banks live in a kvstore.

Two specs in one package: `provider_spec` (inline) and `remote_provider_spec`."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from llama_stack.distribution.provider import Api, Deps, MemorySpec, ProviderSpec

from .config import QdrantLocalMemoryConfig, QdrantRemoteMemoryConfig

if TYPE_CHECKING:
    from ..common.engine import MemoryEngine


async def _engine(
    config: QdrantLocalMemoryConfig | QdrantRemoteMemoryConfig, deps: Deps, path: str | None, url: str | None
) -> MemoryEngine:
    from ..common.engine import MemoryEngine
    from .store import QdrantStore

    api_key = config.api_key if isinstance(config, QdrantRemoteMemoryConfig) else None
    store = await QdrantStore.connect(config.collection_prefix, path, url, api_key)
    return MemoryEngine(store, deps.kvstore, deps[Api.inference], config, deps.outbound)


async def get_provider_impl(config: QdrantLocalMemoryConfig, deps: Deps) -> MemoryEngine:
    def prepare() -> str:
        path = Path(config.path).expanduser()
        path.mkdir(parents=True, exist_ok=True)
        return str(path)

    return await _engine(config, deps, await asyncio.to_thread(prepare), None)


async def get_remote_provider_impl(config: QdrantRemoteMemoryConfig, deps: Deps) -> MemoryEngine:
    return await _engine(config, deps, None, config.url)


provider_spec: MemorySpec[QdrantLocalMemoryConfig] = ProviderSpec(
    kvstore=QdrantLocalMemoryConfig.resolved_kvstore,
    api=Api.memory,
    provider_type="inline::qdrant",
    config_class=QdrantLocalMemoryConfig,
    factory=get_provider_impl,
    description="Vector banks in qdrant-client's local mode (a folder, no server); keyword (BM25) and "
    "key-value banks in a kvstore",
    required_modules=("qdrant_client", "numpy"),
    extra="qdrant",
    depends_on=(Api.inference,),
)

remote_provider_spec: MemorySpec[QdrantRemoteMemoryConfig] = ProviderSpec(
    kvstore=QdrantRemoteMemoryConfig.resolved_kvstore,
    api=Api.memory,
    provider_type="remote::qdrant",
    config_class=QdrantRemoteMemoryConfig,
    factory=get_remote_provider_impl,
    description="Vector banks in a Qdrant server; keyword (BM25) and key-value banks in a kvstore",
    required_modules=("qdrant_client", "numpy"),
    extra="qdrant",
    depends_on=(Api.inference,),
)

__all__ = [
    "QdrantLocalMemoryConfig",
    "QdrantRemoteMemoryConfig",
    "get_provider_impl",
    "get_remote_provider_impl",
    "provider_spec",
    "remote_provider_spec",
]
