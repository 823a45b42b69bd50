"""Configuration of the remote::ollama inference provider (pure pydantic: cheap to import)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class OllamaInferenceConfig(BaseModel):
    """Where the Ollama server listens and how patiently to wait for it."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        default="http://localhost:11434",
        description="base URL of the Ollama server (in run.yaml: ${env.OLLAMA_URL:http://localhost:11434})",
    )
    pull_missing_models: bool = Field(
        default=False,
        description="pull a registered model that Ollama lacks (showing download progress on the "
        "server console) instead of failing with the `ollama pull` command to run",
    )
    timeout_s: float = Field(
        default=120.0,
        gt=0,
        description="how long to wait for Ollama's next bytes; a model's first request may have to "
        "load it into memory, which takes a while for large models",
    )
    connect_timeout_s: float = Field(default=10.0, gt=0, description="how long to wait for a connection")
