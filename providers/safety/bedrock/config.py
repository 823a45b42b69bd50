"""Configuration of the AWS Bedrock Guardrails shield provider (pure pydantic: cheap to import)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator


class BedrockSafetyConfig(BaseModel):
    """Where ApplyGuardrail is called. AWS credentials come from here when given, else from boto3's
    usual chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, AWS_PROFILE, ~/.aws, an instance role).

    Each shield names its guardrail: `provider_shield_id` is the guardrail's id or ARN, and
    `params.guardrail_version` its version (default: `guardrail_version` below)."""

    model_config = ConfigDict(extra="forbid")

    region_name: str | None = Field(default=None, description="e.g. us-west-2 (default: AWS_DEFAULT_REGION)")
    aws_access_key_id: str | None = None
    aws_secret_access_key: SecretStr | None = None
    aws_session_token: SecretStr | None = None
    profile_name: str | None = Field(default=None, description="a profile of ~/.aws/config")
    endpoint_url: str | None = Field(default=None, description="a bedrock-runtime endpoint other than AWS's")
    guardrail_version: str = Field(
        default="DRAFT", min_length=1, description="the guardrail version a shield uses unless its params name one"
    )
    timeout_s: float = Field(default=30.0, gt=0, description="the longest wait for the guardrail's answer")
    connect_timeout_s: float = Field(default=10.0, gt=0)
    max_retries: int = Field(default=2, ge=0, le=10, description="botocore's retries (throttling, 5xx)")

    @field_validator(
        "region_name",
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_session_token",
        "profile_name",
        "endpoint_url",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # `${env.NAME:}` expands to "" when the variable is unset: that means "not given".
        return None if value == "" else value
