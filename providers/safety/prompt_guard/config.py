"""Configuration of the Prompt Guard shield (pure pydantic: cheap to import)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class PromptGuardConfig(BaseModel):
    """Where the classifier's weights are, and when its scores block.

    `model_path` is tried, in order, as a folder, as `checkpoint_dir/<model_path>` (where
    `llama model download` puts it; Prompt-Guard-86M lands in `checkpoint_dir/Prompt-Guard`), and
    as a Hugging Face repo already in the local cache (`meta-llama/<model_path>` for a bare name).
    Nothing is downloaded."""

    model_config = ConfigDict(extra="forbid")

    model_path: str = Field(default="Prompt-Guard-86M", min_length=1)
    checkpoint_dir: str = "~/.llama/checkpoints"
    threshold: float = Field(
        default=0.9, gt=0.0, le=1.0, description="block when the blocked labels' probability reaches this"
    )
    blocked_labels: list[str] = Field(
        default_factory=lambda: ["JAILBREAK"],
        min_length=1,
        description="labels whose probabilities add up to the score: ['JAILBREAK'] catches jailbreaks; "
        "['INJECTION', 'JAILBREAK'] also catches indirect prompt injection",
    )
    device: Literal["auto", "cpu", "cuda"] = "auto"
    max_length: int = Field(
        default=512, ge=8, description="tokens per window; longer texts are scored window by window"
    )


class PromptGuardShieldParams(BaseModel):
    """What a shield registered on this provider may override in its `params`."""

    model_config = ConfigDict(extra="forbid")

    threshold: float | None = Field(default=None, gt=0.0, le=1.0)
    blocked_labels: list[str] | None = Field(default=None, min_length=1)
