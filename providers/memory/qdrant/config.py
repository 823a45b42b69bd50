"""Configurations of inline::qdrant (local mode, a folder) and remote::qdrant (a server URL)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from ..common.config import DEFAULT_STATE_DIR, MemoryProviderConfig

_PREFIX = Field(
    default="llamastack",
    pattern=r"^[A-Za-z0-9_-]{1,60}$",
    description="prefix of the collections this provider creates (one per bank)",
)


class QdrantLocalMemoryConfig(MemoryProviderConfig):
    path: str = Field(
        default=f"{DEFAULT_STATE_DIR}/qdrant",
        description="folder of qdrant-client's local mode (one process at a time); kv.db beside it",
    )
    collection_prefix: str = _PREFIX

    def default_kvstore_path(self) -> Path:
        return Path(self.path).expanduser().parent / "qdrant-kv.db"


class QdrantRemoteMemoryConfig(MemoryProviderConfig):
    url: str = Field(default="http://localhost:6333", description="URL of the Qdrant server")
    api_key: str | None = Field(default=None, description="Qdrant API key, if the server wants one")
    collection_prefix: str = _PREFIX

    def default_kvstore_path(self) -> Path:
        return Path(DEFAULT_STATE_DIR).expanduser() / "qdrant-remote-kv.db"
