"""The contract suite's Ollama backend: remote::ollama against the fake Ollama server.

The registered LLM is Llama 3.2 11B Vision (tag llama3.2-vision:11b), so one model covers text,
tool calls (raw Llama 3 prompts, json format) and images (/api/chat); embeddings come from the
fake's all-minilm:l6-v2.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager

import pytest

from llama_stack.apis.models import Model, ModelType
from llama_stack.distribution.provider import Deps
from tests.fakes.ollama_model import embedder, llama_vision
from tests.fakes.ollama_server import FakeOllama, serve
from tests.providers.contract import EMBEDDINGS, IMAGES, JSON_SCHEMA, TOOLS, InferenceBackend

LLM_ID = "Llama3.2-11B-Vision-Instruct"
EMBEDDING_ID = "all-MiniLM-L6-v2"


@asynccontextmanager
async def open_backend() -> AsyncIterator[InferenceBackend]:
    pytest.importorskip("ollama", reason="needs the ollama extra: pip install 'llamastack-lite[ollama]'")
    from llama_stack.providers.inference.ollama import OllamaInferenceConfig, get_provider_impl

    fake = FakeOllama(installed=[llama_vision("llama3.2-vision:11b"), embedder("all-minilm:l6-v2", 384)])
    with ExitStack() as servers:
        # Starting and stopping uvicorn blocks, so it happens off the event loop.
        url = await asyncio.to_thread(servers.enter_context, serve(fake))
        provider = await get_provider_impl(OllamaInferenceConfig(url=url, timeout_s=30), Deps())
        try:
            model = await provider.register_model(
                Model(identifier=LLM_ID, provider_resource_id=LLM_ID, provider_id="ollama")
            )
            embedding_model = await provider.register_model(
                Model(
                    identifier=EMBEDDING_ID,
                    provider_resource_id=EMBEDDING_ID,
                    provider_id="ollama",
                    model_type=ModelType.embedding,
                )
            )
            yield InferenceBackend(
                name="ollama",
                provider=provider,
                model=model,
                embedding_model=embedding_model,
                features=frozenset({TOOLS, IMAGES, EMBEDDINGS, JSON_SCHEMA}),
                open_streams=lambda: fake.open_streams,
            )
        finally:
            await provider.shutdown()
            await asyncio.to_thread(servers.close)
