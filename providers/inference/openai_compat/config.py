"""Configuration shared by every OpenAI-compatible vendor (pure pydantic: cheap to import)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator


class OpenAICompatConfig(BaseModel):
    """Where the backend is and how to call it. The API key is looked up per request, in order:
    the request's provider data (X-LlamaStack-ProviderData), `api_key` here, then the vendor's
    environment variable (e.g. TOGETHER_API_KEY)."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(
        default=None, description="the OpenAI-compatible base URL, ending in /v1 (default: the vendor's)"
    )
    api_key: SecretStr | None = Field(default=None, description="the API key (kept out of logs and reprs)")
    model_ids: dict[str, str] = Field(
        default_factory=dict,
        description="Llama model id (either spelling) -> the backend's model name, over the vendor's table",
    )
    timeout_s: float = Field(default=60.0, gt=0, description="the longest wait for an answer, or between chunks")
    max_retries: int = Field(
        default=2, ge=0, le=10, description="retries of a non-streaming call on connection errors, 429 and 5xx"
    )
    retry_backoff_s: float = Field(
        default=0.5, ge=0, description="the first retry's delay; each next one doubles (jittered, at most 8 s)"
    )
    max_connections: int = Field(
        default=256, ge=1, description="the most connections open to the backend at once (kept alive between calls)"
    )
    verify_models: bool = Field(
        default=True, description="check registered models against the backend's /v1/models where it lists them"
    )

    @field_validator("url", "api_key", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # `${env.NAME:}` expands to "" when the variable is unset: that means "not given".
        return None if value == "" else value
