"""Configuration of the AWS Bedrock inference provider (pure pydantic: cheap to import)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator


class BedrockClientConfig(BaseModel):
    """How a bedrock-runtime client is made; the inference and the guardrails providers' configs
    both extend it."""

    model_config = ConfigDict(extra="forbid")

    region_name: str | None = Field(default=None, description="e.g. us-west-2 (default: AWS_DEFAULT_REGION)")
    aws_access_key_id: str | None = None
    aws_secret_access_key: SecretStr | None = None
    aws_session_token: SecretStr | None = None
    profile_name: str | None = Field(default=None, description="a profile of ~/.aws/config")
    endpoint_url: str | None = Field(default=None, description="a bedrock-runtime endpoint other than AWS's")
    timeout_s: float = Field(default=60.0, gt=0, description="the longest wait for an answer, or between events")
    connect_timeout_s: float = Field(default=10.0, gt=0)
    max_retries: int = Field(
        default=2, ge=0, le=10, description="botocore's retries (throttling, 5xx) before any answer arrives"
    )

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


class BedrockConfig(BedrockClientConfig):
    """AWS credentials come from here when given, else from boto3's usual chain (AWS_ACCESS_KEY_ID /
    AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, AWS_PROFILE, ~/.aws, an instance role)."""

    model_ids: dict[str, str] = Field(
        default_factory=dict,
        description="Llama model id (either spelling) -> Bedrock model id or inference profile "
        "(e.g. us.meta.llama3-2-3b-instruct-v1:0), over the built-in table",
    )
