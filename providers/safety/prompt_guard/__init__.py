"""inline::prompt-guard: Meta's Prompt Guard (an mDeBERTa classifier of jailbreak and prompt
injection attempts) run in-process with transformers. torch and transformers are imported by
the factory only."""

from __future__ import annotations

from typing import TYPE_CHECKING

from llama_stack.distribution.provider import Api, Deps, ProviderSpec, SafetySpec

from .config import PromptGuardConfig

if TYPE_CHECKING:
    from .shield import PromptGuardShield


async def get_provider_impl(config: PromptGuardConfig, deps: Deps) -> PromptGuardShield:
    from .shield import PromptGuardShield

    return await PromptGuardShield.load(config)


provider_spec: SafetySpec[PromptGuardConfig] = ProviderSpec(
    api=Api.safety,
    provider_type="inline::prompt-guard",
    config_class=PromptGuardConfig,
    factory=get_provider_impl,
    description="Prompt Guard: a jailbreak / prompt-injection classifier (mDeBERTa) with thresholds, "
    "run locally with transformers",
    required_modules=("torch", "transformers"),
    extra="torch",
)

__all__ = ["PromptGuardConfig", "get_provider_impl", "provider_spec"]
