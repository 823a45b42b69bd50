"""remote::ollama: Llama models served by a local or remote Ollama server.

Importing this package stays cheap (pydantic only): the `ollama` client is imported by the
factory, so a distribution that does not use this provider never loads it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llama_stack.distribution.provider import Api, Deps, InferenceSpec, ProviderSpec

from .config import OllamaInferenceConfig

if TYPE_CHECKING:
    from .inference import OllamaInference


async def get_provider_impl(config: OllamaInferenceConfig, deps: Deps) -> OllamaInference:
    from .inference import OllamaInference

    return OllamaInference(config, deps.outbound)


provider_spec: InferenceSpec[OllamaInferenceConfig] = ProviderSpec(
    api=Api.inference,
    provider_type="remote::ollama",
    config_class=OllamaInferenceConfig,
    factory=get_provider_impl,
    description="Llama models (text, vision, Llama Guard, embeddings) served by Ollama; Llama ids map to "
    "Ollama tags, prompts use the Llama 3 chat format, missing tags can be pulled with progress",
    required_modules=("ollama",),
    extra="ollama",
)

__all__ = ["OllamaInferenceConfig", "get_provider_impl", "provider_spec"]
