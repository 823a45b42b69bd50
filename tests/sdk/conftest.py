"""One live stack server for the SDK tests: the scripted inference provider (tests/scripted.py)
and the scripted agents provider, over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from llama_stack.distribution.registry import install_provider
from tests.live import LiveServer, live_server
from tests.sdk.scripted_agents import SCRIPTED_AGENTS_SPEC

install_provider(SCRIPTED_AGENTS_SPEC)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    config: dict[str, Any] = {
        "version": 2,
        "image_name": "sdk",
        "providers": {
            "inference": [
                {"provider_id": "scripted", "provider_type": "test::scripted", "config": {"token_delay_s": 0.002}}
            ],
            "agents": [{"provider_id": "agents", "provider_type": "test::scripted-agents"}],
        },
        "metadata_store": {"type": "sqlite", "db_path": str(tmp_path_factory.mktemp("sdk") / "registry.db")},
        "models": [{"model_id": "echo"}, {"model_id": "embedder", "model_type": "embedding"}],
    }
    with live_server(config) as live:
        yield live
