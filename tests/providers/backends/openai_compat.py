"""The contract suite's OpenAI-compatible backend: remote::vllm (the vendor that lists its models)
against the fake OpenAI server. The other vendors differ only in configuration, which
tests/providers/test_openai_compat*.py cover."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from llama_stack.apis.models import Model, ModelType
from llama_stack.distribution.provider import Deps
from tests.fakes.openai_server import FakeOpenAIServer
from tests.providers.contract import EMBEDDINGS, IMAGES, JSON_SCHEMA, LOGPROBS, TOOLS, InferenceBackend

LLM_ID = "Llama3.2-11B-Vision-Instruct"  # served by the fake as meta-llama/Llama-3.2-11B-Vision-Instruct
EMBEDDING_ID = "nomic-ai/nomic-embed-text-v1.5"


@asynccontextmanager
async def open_backend() -> AsyncIterator[InferenceBackend]:
    from llama_stack.providers.inference.openai_compat import OpenAICompatConfig, vllm_spec

    fake = FakeOpenAIServer()
    # Starting and stopping uvicorn blocks, so it happens off the event loop.
    await asyncio.to_thread(fake.start)
    config = OpenAICompatConfig(url=fake.base_url, timeout_s=30, retry_backoff_s=0.01)
    provider = await vllm_spec.factory(config, Deps())
    try:
        model = await provider.register_model(Model(identifier=LLM_ID, provider_resource_id=LLM_ID, provider_id="vllm"))
        embedding_model = await provider.register_model(
            Model(
                identifier=EMBEDDING_ID,
                provider_resource_id=EMBEDDING_ID,
                provider_id="vllm",
                model_type=ModelType.embedding,
            )
        )
        yield InferenceBackend(
            name="vllm",
            provider=provider,
            model=model,
            embedding_model=embedding_model,
            features=frozenset({TOOLS, IMAGES, EMBEDDINGS, LOGPROBS, JSON_SCHEMA}),
            open_streams=lambda: fake.state.open_streams,
        )
    finally:
        await provider.shutdown()
        await asyncio.to_thread(fake.stop)
