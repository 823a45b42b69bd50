"""remote::bedrock: Llama models on AWS Bedrock through boto3's Converse / ConverseStream APIs
(InvokeModel for raw completions and Titan embeddings).

Importing this package stays cheap (pydantic only): boto3 is imported by the factory.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llama_stack.distribution.provider import Api, Deps, InferenceSpec, ProviderSpec

from .config import BedrockConfig

if TYPE_CHECKING:
    from .inference import BedrockInference


async def get_provider_impl(config: BedrockConfig, deps: Deps) -> BedrockInference:
    from .inference import BedrockInference

    return BedrockInference(config)


provider_spec: InferenceSpec[BedrockConfig] = ProviderSpec(
    api=Api.inference,
    provider_type="remote::bedrock",
    config_class=BedrockConfig,
    factory=get_provider_impl,
    description="Llama models on AWS Bedrock (Converse API: chat, tools, images, streaming) through boto3",
    required_modules=("boto3",),
    extra="bedrock",
)

__all__ = ["BedrockConfig", "get_provider_impl", "provider_spec"]
