"""Configuration of inline::sqlite-vec (pure pydantic: cheap to import)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from ..common.config import DEFAULT_STATE_DIR, MemoryProviderConfig


class SqliteVecMemoryConfig(MemoryProviderConfig):
    db_path: str = Field(
        default=f"{DEFAULT_STATE_DIR}/sqlite_vec.db",
        description="SQLite file of the vector banks; keyword and key-value banks default to <name>.kv.db beside it",
    )

    def default_kvstore_path(self) -> Path:
        return Path(self.db_path).expanduser().with_suffix(".kv.db")
