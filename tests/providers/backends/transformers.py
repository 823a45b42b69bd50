"""The contract suite's transformers backends: inline::transformers, built by its real factory,
running tiny real checkpoints on the CPU.

`open_backend` serves the tiny random Llama 3 (text; logprobs; json_schema by constrained
decoding). `open_tool_backend` serves the tiny Llama trained to answer every chat with a
get_weather(city="Paris") call (tests/providers/tiny_tools.py), the one way a model this small
can show tool calling end to end. Images are covered by tests/providers/test_vision.py on the
tiny Mllama, not claimed here.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from llama_stack.apis.models import Model, ModelType
from llama_stack.distribution.provider import Deps
from tests.providers.contract import JSON_SCHEMA, LOGPROBS, TOOLS, InferenceBackend
from tests.providers.transformers_support import TINY, test_models_root

CONTEXT = 512


def _open_streams(provider: Any, resource_id: str) -> Any:
    def count() -> int:
        stats = provider.loaded_model(resource_id).engine.stats()
        return int(stats.active + stats.waiting)

    return count


@asynccontextmanager
async def _serving(resource_id: str, tiny_root: Path, features: frozenset[str]) -> AsyncIterator[InferenceBackend]:
    pytest.importorskip("torch", reason="needs the torch extra: pip install 'llamastack-lite[torch]'")
    pytest.importorskip("transformers", reason="needs the torch extra: pip install 'llamastack-lite[torch]'")
    from llama_stack.providers.inference.transformers import TransformersInferenceConfig, get_provider_impl

    with tempfile.TemporaryDirectory(prefix="empty-hf-cache-") as hf_cache:
        config = TransformersInferenceConfig(
            device="cpu", tiny_model_dir=str(tiny_root), hf_cache_dir=hf_cache, max_seq_len=CONTEXT
        )
        provider = await get_provider_impl(config, Deps())
        try:
            model = await provider.register_model(
                Model(
                    identifier=resource_id,
                    provider_resource_id=resource_id,
                    provider_id="transformers",
                    model_type=ModelType.llm,
                )
            )
            yield InferenceBackend(
                name="transformers",
                provider=provider,
                model=model,
                features=features,
                open_streams=_open_streams(provider, resource_id),
            )
        finally:
            await provider.shutdown()


@asynccontextmanager
async def open_backend() -> AsyncIterator[InferenceBackend]:
    with tempfile.TemporaryDirectory(prefix="tiny-models-") as tiny_root:
        async with _serving(TINY, Path(tiny_root), frozenset({LOGPROBS, JSON_SCHEMA})) as backend:
            yield backend


@asynccontextmanager
async def open_tool_backend() -> AsyncIterator[InferenceBackend]:
    pytest.importorskip("torch", reason="needs the torch extra: pip install 'llamastack-lite[torch]'")
    from tests.providers.tiny_tools import ensure_tiny_tool_model

    tool_model = ensure_tiny_tool_model(test_models_root())
    async with _serving(str(tool_model), tool_model.parent, frozenset({TOOLS, LOGPROBS})) as backend:
        yield backend
