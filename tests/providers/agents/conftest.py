"""Fixtures of the agents suite: a stack serving the scripted providers and the agents provider."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest

from llama_stack.distribution.resolver import Stack
from tests.providers.agents.fakes import install, run_config, running

install()

StackFactory = Callable[..., AbstractAsyncContextManager[Stack]]


@pytest.fixture
def agent_stack(tmp_path: Path) -> StackFactory:
    """`async with agent_stack(**run_config options) as stack`: a stack on this test's own state."""

    def start(**options: Any) -> AbstractAsyncContextManager[Stack]:
        return running(run_config(tmp_path, **options))

    return start
