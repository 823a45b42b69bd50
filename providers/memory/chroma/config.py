"""Configuration of remote::chromadb (pure pydantic: cheap to import)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from ..common.config import DEFAULT_STATE_DIR, MemoryProviderConfig


class ChromaMemoryConfig(MemoryProviderConfig):
    url: str = Field(default="http://localhost:8000", description="base URL of the Chroma server (`chroma run`)")
    collection_prefix: str = Field(
        default="llamastack",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,60}$",
        description="prefix of the collections this provider creates (one per bank)",
    )

    def default_kvstore_path(self) -> Path:
        return Path(DEFAULT_STATE_DIR).expanduser() / "chroma-kv.db"
