"""Configuration of the Llama Guard 3 shield (pure pydantic: cheap to import)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .prompt import TAXONOMY, CustomCategory


class LlamaGuardConfig(BaseModel):
    """Which guard models to call through the inference router and which policy to ask them about.

    Every field may be overridden per shield by the shield's `params` at registration."""

    model_config = ConfigDict(extra="forbid")

    text_model: str = Field(
        default="Llama-Guard-3-1B",
        min_length=1,
        description="registered model id of the text guard (e.g. Llama-Guard-3-8B, or llama-guard3:1b on Ollama)",
    )
    vision_model: str | None = Field(
        default="Llama-Guard-3-11B-Vision",
        description="registered model id used when a message holds an image; null: images are refused",
    )
    excluded_categories: list[str] = Field(
        default_factory=list, description="official category codes left out of the policy, e.g. ['S6']"
    )
    custom_categories: list[CustomCategory] = Field(default_factory=list)
    on_unparsable: Literal["block", "allow"] = Field(
        default="block",
        description="what to do when the guard answers neither 'safe' nor 'unsafe': block (fail closed) "
        "or allow with a warn-level violation that says why",
    )
    max_tokens: int = Field(default=20, ge=4, description="generation budget of the guard's verdict")

    @field_validator("excluded_categories")
    @classmethod
    def _known_codes(cls, codes: list[str]) -> list[str]:
        normalized = [code.strip().upper() for code in codes]
        for code in normalized:
            if code not in TAXONOMY:
                raise ValueError(f"unknown category code '{code}': use the Llama Guard 3 codes S1 to S14")
        return normalized
