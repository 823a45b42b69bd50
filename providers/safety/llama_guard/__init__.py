"""inline::llama-guard: Llama Guard 3 as a shield. The guard model is any model registered with
the inference API (Llama-Guard-3-1B for text, Llama-Guard-3-11B-Vision for images by default;
llama-guard3:1b / :8b on Ollama), called through the inference router like any client request."""

from __future__ import annotations

from typing import TYPE_CHECKING

from llama_stack.distribution.provider import Api, Deps, ProviderSpec, SafetySpec

from .config import LlamaGuardConfig
from .prompt import CustomCategory

if TYPE_CHECKING:
    from .shield import LlamaGuardShield


async def get_provider_impl(config: LlamaGuardConfig, deps: Deps) -> LlamaGuardShield:
    from .shield import LlamaGuardShield

    return LlamaGuardShield(config, inference=deps[Api.inference])


provider_spec: SafetySpec[LlamaGuardConfig] = ProviderSpec(
    api=Api.safety,
    provider_type="inline::llama-guard",
    config_class=LlamaGuardConfig,
    factory=get_provider_impl,
    description="Llama Guard 3 (1B text, 11B Vision for images) with the S1-S14 taxonomy, "
    "excluded and custom categories; the guard model is served by the inference API",
    depends_on=(Api.inference,),
)

__all__ = ["CustomCategory", "LlamaGuardConfig", "get_provider_impl", "provider_spec"]
