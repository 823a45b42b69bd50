from __future__ import annotations

from pathlib import Path

import pytest

from tests.providers.safety.stacks import install_safety_providers

install_safety_providers()


@pytest.fixture(scope="session")
def tiny_prompt_guard(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Prompt-Guard-shaped classifier folder with random weights (see tiny_classifier)."""
    from tests.providers.safety.tiny_classifier import build_tiny_prompt_guard

    return build_tiny_prompt_guard(tmp_path_factory.mktemp("tiny-prompt-guard"))
