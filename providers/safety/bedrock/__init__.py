"""remote::bedrock (safety): Amazon Bedrock Guardrails as shields, through boto3's ApplyGuardrail.

Bedrock hosts no Llama Guard, so the Bedrock distribution guards with a guardrail you define in
your AWS account (content filters, denied topics, words, PII). Importing this package stays cheap
(pydantic only): boto3 is imported by the factory.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llama_stack.distribution.provider import Api, Deps, ProviderSpec, SafetySpec

from .config import BedrockSafetyConfig

if TYPE_CHECKING:
    from .guardrails import BedrockGuardrails


async def get_provider_impl(config: BedrockSafetyConfig, deps: Deps) -> BedrockGuardrails:
    from .guardrails import BedrockGuardrails

    return BedrockGuardrails(config)


provider_spec: SafetySpec[BedrockSafetyConfig] = ProviderSpec(
    api=Api.safety,
    provider_type="remote::bedrock",
    config_class=BedrockSafetyConfig,
    factory=get_provider_impl,
    description="Amazon Bedrock Guardrails (ApplyGuardrail) as shields: provider_shield_id is the guardrail id, "
    "params.guardrail_version its version",
    required_modules=("boto3",),
    extra="bedrock",
)

__all__ = ["BedrockSafetyConfig", "get_provider_impl", "provider_spec"]
