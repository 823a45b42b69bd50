"""Configuration of the AWS Bedrock Guardrails shield provider (pure pydantic: cheap to import)."""

from __future__ import annotations

from pydantic import Field

from ...inference.bedrock.config import BedrockClientConfig


class BedrockSafetyConfig(BedrockClientConfig):
    """Where ApplyGuardrail is called. AWS credentials come from here when given, else from boto3's
    usual chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, AWS_PROFILE, ~/.aws, an instance role).

    Each shield names its guardrail: `provider_shield_id` is the guardrail's id or ARN, and
    `params.guardrail_version` its version (default: `guardrail_version` below)."""

    timeout_s: float = Field(default=30.0, gt=0, description="the longest wait for the guardrail's answer")
    guardrail_version: str = Field(
        default="DRAFT", min_length=1, description="the guardrail version a shield uses unless its params name one"
    )
