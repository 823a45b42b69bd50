"""remote::chromadb: vector banks as collections of a Chroma server (cosine space). Keyword and
key-value banks live in a kvstore."""

from __future__ import annotations

from typing import TYPE_CHECKING

from llama_stack.distribution.provider import Api, Deps, MemorySpec, ProviderSpec

from .config import ChromaMemoryConfig

if TYPE_CHECKING:
    from ..common.engine import MemoryEngine


async def get_provider_impl(config: ChromaMemoryConfig, deps: Deps) -> MemoryEngine:
    from ..common.engine import MemoryEngine
    from .store import ChromaStore

    store = await ChromaStore.connect(config.url, config.collection_prefix)
    return MemoryEngine(store, deps.kvstore, deps[Api.inference], config, deps.outbound)


provider_spec: MemorySpec[ChromaMemoryConfig] = ProviderSpec(
    kvstore=ChromaMemoryConfig.resolved_kvstore,
    api=Api.memory,
    provider_type="remote::chromadb",
    config_class=ChromaMemoryConfig,
    factory=get_provider_impl,
    description="Vector banks in a Chroma server (`chroma run`), a collection per bank; keyword (BM25) and "
    "key-value banks in a kvstore",
    required_modules=("chromadb", "numpy"),
    extra="chroma",
    depends_on=(Api.inference,),
)

__all__ = ["ChromaMemoryConfig", "get_provider_impl", "provider_spec"]
