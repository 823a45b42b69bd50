"""inline::faiss: the embedded default memory provider. Exact cosine search in FAISS; every bank
persists incrementally to an append-only, fsynced log. Keyword and key-value banks live in a kvstore."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from llama_stack.distribution.provider import Api, Deps, MemorySpec, ProviderSpec

from .config import FaissMemoryConfig

if TYPE_CHECKING:
    from ..common.engine import MemoryEngine


def _prepare(folder: str) -> Path:
    path = Path(folder).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


async def get_provider_impl(config: FaissMemoryConfig, deps: Deps) -> MemoryEngine:
    from ..common.engine import MemoryEngine
    from .store import FaissVectorStore

    persist_dir = await asyncio.to_thread(_prepare, config.persist_dir)
    return MemoryEngine(
        FaissVectorStore(persist_dir, config.index), deps.kvstore, deps[Api.inference], config, deps.outbound
    )


provider_spec: MemorySpec[FaissMemoryConfig] = ProviderSpec(
    kvstore=FaissMemoryConfig.resolved_kvstore,
    api=Api.memory,
    provider_type="inline::faiss",
    config_class=FaissMemoryConfig,
    factory=get_provider_impl,
    description="Embedded vector banks in FAISS (exact cosine search), persisted to an append-only log; "
    "keyword (BM25) and key-value banks in a kvstore",
    required_modules=("faiss", "numpy"),
    extra="faiss",
    depends_on=(Api.inference,),
)

__all__ = ["FaissMemoryConfig", "get_provider_impl", "provider_spec"]
