"""What the remote::ollama tests share: the fake Ollama server and a provider registered
against it as fixtures, the models the fake holds, and helpers to build requests and read streams.

Test modules import the fixtures they use (`fake_fixture` is the `fake` fixture, and so on)."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from llama_stack.apis.common import (
    ToolCall,
    ToolDefinition,
    ToolParamDefinition,
    UserMessage,
)
from llama_stack.apis.inference import (
    ChatCompletionRequest,
    ChatCompletionResponseStreamChunk,
    ToolCallDelta,
    ToolCallParseStatus,
)
from llama_stack.apis.models import Model, ModelType
from llama_stack.distribution.outbound import OutboundConfig, OutboundPolicy
from llama_stack.distribution.provider import Deps
from tests.fakes.ollama_model import FakeModel, embedder, llama_text, llama_vision
from tests.fakes.ollama_server import FakeOllama, serve

pytest.importorskip("ollama", reason="needs the ollama extra: pip install 'llamastack-lite[ollama]'")

from llama_stack.providers.inference.ollama import (
    OllamaInferenceConfig,
    get_provider_impl,
)
from llama_stack.providers.inference.ollama.inference import OllamaInference

LLAMA_1B = "meta-llama/Llama-3.2-1B-Instruct"
VISION = "Llama3.2-11B-Vision-Instruct"
MINILM = "all-MiniLM-L6-v2"
MISTRAL = "mistral:7b"  # not a Llama: its Ollama template renders the chat
DISTRIBUTION = Path(__file__).resolve().parents[2] / "distributions" / "ollama"
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
WEATHER_TOOL = ToolDefinition(
    tool_name="get_weather",
    description="Get the current weather in a city",
    parameters={"city": ToolParamDefinition(param_type="string", description="the city")},
)


def installed_models() -> list[FakeModel]:
    return [
        llama_text("llama3.2:1b-instruct-fp16"),
        llama_vision("llama3.2-vision:11b"),
        embedder("all-minilm:l6-v2", 384),
        embedder("nomic-embed-text:latest", 768),
        FakeModel(MISTRAL, parameter_size="7.2B", template="[INST] {{ .Prompt }} [/INST]"),
    ]


@pytest.fixture(name="fake")
def fake_fixture() -> FakeOllama:
    return FakeOllama(installed=installed_models(), library=[llama_text("llama3.2:3b-instruct-fp16")])


@pytest.fixture(name="ollama_url")
def ollama_url_fixture(fake: FakeOllama) -> Iterator[str]:
    with serve(fake) as url:
        yield url


async def register(provider: OllamaInference, model_id: str, model_type: ModelType = ModelType.llm) -> Model:
    model = Model(identifier=model_id, provider_resource_id=model_id, provider_id="ollama", model_type=model_type)
    registered: Model = await provider.register_model(model)  # the providers package reads as Any to mypy
    return registered


@pytest.fixture(name="provider")
async def provider_fixture(ollama_url: str) -> AsyncIterator[OllamaInference]:
    # The fake serves the images the tests name on loopback, which the default policy refuses.
    loopback = OutboundPolicy.from_config(OutboundConfig(allow=["127.0.0.1"]))
    impl = await get_provider_impl(OllamaInferenceConfig(url=ollama_url, timeout_s=10), Deps(outbound=loopback))
    for model_id in (LLAMA_1B, VISION, MISTRAL):
        await register(impl, model_id)
    await register(impl, MINILM, ModelType.embedding)
    yield impl
    await impl.shutdown()


def chat(text: str, model: str = LLAMA_1B, **fields: Any) -> ChatCompletionRequest:
    return ChatCompletionRequest(model_id=model, messages=[UserMessage(content=text)], **fields)


async def collect(stream: AsyncIterator[ChatCompletionResponseStreamChunk]) -> list[ChatCompletionResponseStreamChunk]:
    return [chunk async for chunk in stream]


def text_of(chunks: list[ChatCompletionResponseStreamChunk]) -> str:
    return "".join(c.event.delta for c in chunks if isinstance(c.event.delta, str))


def streamed_calls(chunks: list[ChatCompletionResponseStreamChunk]) -> list[ToolCall]:
    deltas = [c.event.delta for c in chunks if isinstance(c.event.delta, ToolCallDelta)]
    return [
        d.content for d in deltas if d.parse_status == ToolCallParseStatus.success and isinstance(d.content, ToolCall)
    ]


async def eventually(condition: Callable[[], bool], within_s: float = 1.0) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)
