"""inline::sentence-transformers: text embeddings computed in-process with sentence-transformers.

Importing this package stays cheap (pydantic only): sentence-transformers and torch are imported
by the factory, so a distribution that does not use this provider never loads them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llama_stack.distribution.provider import Api, Deps, InferenceSpec, ProviderSpec

from .config import SentenceTransformersConfig

if TYPE_CHECKING:
    from .embeddings import SentenceTransformersInference


async def get_provider_impl(config: SentenceTransformersConfig, deps: Deps) -> SentenceTransformersInference:
    from .embeddings import SentenceTransformersInference

    return SentenceTransformersInference(config)


provider_spec: InferenceSpec[SentenceTransformersConfig] = ProviderSpec(
    api=Api.inference,
    provider_type="inline::sentence-transformers",
    config_class=SentenceTransformersConfig,
    factory=get_provider_impl,
    description="Text embeddings with sentence-transformers; all-MiniLM-L6-v2 (384 dimensions) "
    "ships with the package and works offline",
    required_modules=("sentence_transformers",),
    # The bundled weights are complete on disk; offline, huggingface_hub never stalls looking
    # for optional files. It reads this once at import, which a background start does early.
    import_env=(("HF_HUB_OFFLINE", "1"),),
    extra="embeddings",
)

__all__ = ["SentenceTransformersConfig", "get_provider_impl", "provider_spec"]
