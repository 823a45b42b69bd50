"""Config of the meta-reference agents provider (pydantic only: it must import cheaply)."""

from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict, Field

from llama_stack.distribution.store.api import KVStoreConfig, SqliteKVStoreConfig
from llama_stack.providers.agents.tools.config import SandboxConfig, WebToolsConfig


def default_store() -> SqliteKVStoreConfig:
    return SqliteKVStoreConfig(db_path=os.path.expanduser("~/.llama/runtime/agents_store.db"))


class MetaReferenceAgentsConfig(BaseModel):
    """Agents, sessions, turns and steps live in `persistence_store`: point several replicas at
    one Postgres or Redis and a session started on one continues on any other."""

    model_config = ConfigDict(extra="forbid")

    persistence_store: KVStoreConfig = Field(default_factory=default_store)
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig)
    web: WebToolsConfig = Field(default_factory=WebToolsConfig)
    session_lease_s: float = Field(
        default=10.0,
        gt=0,
        description="a session's turn lease is renewed every third of this; a replica that dies mid-turn "
        "frees the session within twice this",
    )
    session_bank_embedding_model: str | None = Field(
        default=None,
        description="embedding model of the session banks holding attached documents; default: the first registered",
    )
