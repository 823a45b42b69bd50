from __future__ import annotations

import pytest

from llama_stack.distribution.registry import install_provider
from tests.scripted import NEEDS_MISSING_MODULE_SPEC, SCRIPTED_SPEC
from tests.servers import postgres_dsn, redis_url  # noqa: F401 - session fixtures shared by every tier

install_provider(SCRIPTED_SPEC)
install_provider(NEEDS_MISSING_MODULE_SPEC)


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep ~/.llama writes of the code under test out of the real home directory."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
