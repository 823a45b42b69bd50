"""Configuration of inline::faiss (pure pydantic: cheap to import)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from ..common.config import DEFAULT_STATE_DIR, MemoryProviderConfig


class FaissMemoryConfig(MemoryProviderConfig):
    persist_dir: str = Field(
        default=f"{DEFAULT_STATE_DIR}/faiss",
        description="folder of the banks' append-only logs; keyword and key-value banks default to kv.db in it",
    )

    def default_kvstore_path(self) -> Path:
        return Path(self.persist_dir).expanduser() / "kv.db"
