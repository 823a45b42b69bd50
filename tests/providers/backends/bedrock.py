"""The contract suite's Bedrock backend: remote::bedrock, built by its real factory, whose real
botocore client is answered by the fake Bedrock runtime (tests/fakes/bedrock_runtime.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from llama_stack.apis.models import Model, ModelType
from llama_stack.distribution.provider import Deps
from tests.providers.contract import EMBEDDINGS, IMAGES, TOOLS, InferenceBackend

LLM_ID = "meta-llama/Llama-3.2-11B-Vision-Instruct"  # meta.llama3-2-11b-instruct-v1:0 on Bedrock
EMBEDDING_ID = "amazon.titan-embed-text-v2:0"


@asynccontextmanager
async def open_backend() -> AsyncIterator[InferenceBackend]:
    pytest.importorskip("boto3", reason="needs the bedrock extra: pip install 'llamastack-lite[bedrock]'")
    from llama_stack.providers.inference.bedrock import BedrockConfig, get_provider_impl
    from tests.fakes.bedrock_runtime import FakeBedrockRuntime

    config = BedrockConfig(region_name="us-west-2", aws_access_key_id="test", aws_secret_access_key="test")
    provider = await get_provider_impl(config, Deps())
    fake = FakeBedrockRuntime()
    fake.install(provider.client)
    try:
        model = await provider.register_model(
            Model(identifier=LLM_ID, provider_resource_id=LLM_ID, provider_id="bedrock")
        )
        embedding_model = await provider.register_model(
            Model(
                identifier=EMBEDDING_ID,
                provider_resource_id=EMBEDDING_ID,
                provider_id="bedrock",
                model_type=ModelType.embedding,
            )
        )
        yield InferenceBackend(
            name="bedrock",
            provider=provider,
            model=model,
            embedding_model=embedding_model,
            features=frozenset({TOOLS, IMAGES, EMBEDDINGS}),
            open_streams=lambda: fake.open_streams,
        )
    finally:
        await provider.shutdown()
