"""One contract, every inference provider: the same cases, the same observable behaviour.

Backends (tests/providers/backends/*.py) start what their provider talks to and claim the
optional features they support (see tests/providers/contract.py)."""

from __future__ import annotations

import asyncio
import importlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from llama_stack.apis.common import (
    SamplingParams,
    SamplingStrategy,
    ToolCall,
    ToolDefinition,
    ToolParamDefinition,
    UserMessage,
)
from llama_stack.apis.errors import StackError
from llama_stack.apis.inference import (
    ChatCompletionEventType,
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingsRequest,
    JsonSchemaResponseFormat,
    LogProbConfig,
    ToolCallDelta,
)
from llama_stack.apis.models import Model
from tests.providers.contract import EMBEDDINGS, IMAGES, JSON_SCHEMA, LOGPROBS, TOOLS, InferenceBackend

# module[:opener] under tests/providers/backends; the opener defaults to open_backend.
BACKENDS = ["transformers", "transformers:open_tool_backend", "ollama", "openai_compat", "bedrock"]
GREEDY = SamplingParams(strategy=SamplingStrategy.greedy, max_tokens=12)
RED_PIXEL = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"
WEATHER = ToolDefinition(
    tool_name="get_weather",
    description="Current weather in a city",
    parameters={"city": ToolParamDefinition(param_type="string", description="City name", required=True)},
)


@pytest.fixture(params=BACKENDS, scope="module")
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[InferenceBackend]:
    name, _, opener = str(request.param).partition(":")
    module = importlib.import_module(f"tests.providers.backends.{name}")
    async with getattr(module, opener or "open_backend")() as opened:
        yield opened


def needs(backend: InferenceBackend, feature: str) -> None:
    if feature not in backend.features:
        pytest.skip(f"{backend.name} does not claim {feature}")


def chat(backend: InferenceBackend, text: str, **fields: Any) -> ChatCompletionRequest:
    fields.setdefault("sampling_params", GREEDY)
    return ChatCompletionRequest(
        model_id=backend.model.provider_resource_id, messages=[UserMessage(content=text)], **fields
    )


async def test_chat_returns_an_assistant_message(backend: InferenceBackend) -> None:
    response = await backend.provider.chat_completion(chat(backend, "Say something about llamas."))
    message = response.completion_message
    assert message.role == "assistant" and isinstance(message.content, str)
    assert message.stop_reason in {"end_of_turn", "end_of_message", "out_of_tokens"}


async def test_greedy_stream_matches_the_whole_answer(backend: InferenceBackend) -> None:
    request = chat(backend, "Tell me a short story.")
    whole = await backend.provider.chat_completion(request)
    events = [chunk.event async for chunk in backend.provider.chat_completion_stream(request)]
    assert events[0].event_type == ChatCompletionEventType.start
    assert events[-1].event_type == ChatCompletionEventType.complete
    assert all(e.event_type == ChatCompletionEventType.progress for e in events[1:-1])
    text = "".join(e.delta for e in events if isinstance(e.delta, str))
    assert text == whole.completion_message.content
    assert events[-1].stop_reason == whole.completion_message.stop_reason


async def test_max_tokens_stops_with_out_of_tokens_and_counts_usage(backend: InferenceBackend) -> None:
    request = chat(
        backend,
        "Write a long essay on the history of wool.",
        sampling_params=SamplingParams(strategy=SamplingStrategy.greedy, max_tokens=3),
    )
    response = await backend.provider.chat_completion(request)
    assert response.completion_message.stop_reason == "out_of_tokens"
    assert response.usage is not None
    assert response.usage.prompt_tokens > 0 and response.usage.completion_tokens == 3


async def test_completion_stream_matches_the_whole_answer(backend: InferenceBackend) -> None:
    request = CompletionRequest(
        model_id=backend.model.provider_resource_id,
        content="Once upon a time",
        sampling_params=SamplingParams(strategy=SamplingStrategy.greedy, max_tokens=6),
    )
    whole = await backend.provider.completion(request)
    chunks = [chunk async for chunk in backend.provider.completion_stream(request)]
    assert "".join(c.delta for c in chunks) == whole.content
    assert chunks[-1].stop_reason == whole.stop_reason == "out_of_tokens"


async def test_closing_a_stream_stops_the_work_behind_it(backend: InferenceBackend) -> None:
    if backend.open_streams is None:
        pytest.skip(f"{backend.name} cannot count its open streams")
    request = chat(
        backend,
        "Count to one thousand.",
        sampling_params=SamplingParams(strategy=SamplingStrategy.greedy, max_tokens=500),
    )
    stream = backend.provider.chat_completion_stream(request)
    for _ in range(3):
        await anext(stream)
    await stream.aclose()
    for _ in range(100):
        if backend.open_streams() == 0:
            break
        await asyncio.sleep(0.01)
    assert backend.open_streams() == 0


async def test_unknown_model_is_refused_at_registration(backend: InferenceBackend) -> None:
    bogus = Model(identifier="bogus", provider_resource_id="no-such-model-anywhere", provider_id=backend.name)
    with pytest.raises(StackError, match="no-such-model-anywhere"):
        await backend.provider.register_model(bogus)


async def test_tool_call_is_parsed(backend: InferenceBackend) -> None:
    needs(backend, TOOLS)
    request = chat(backend, "What is the weather in Paris?", tools=[WEATHER])
    message = (await backend.provider.chat_completion(request)).completion_message
    assert [(c.tool_name, c.arguments) for c in message.tool_calls] == [("get_weather", {"city": "Paris"})]
    assert message.stop_reason == "end_of_message"
    events = [chunk.event async for chunk in backend.provider.chat_completion_stream(request)]
    deltas = [e.delta.content for e in events if isinstance(e.delta, ToolCallDelta)]
    parsed = [c for c in deltas if isinstance(c, ToolCall)]
    assert [(c.tool_name, c.arguments) for c in parsed] == [("get_weather", {"city": "Paris"})]


async def test_images_are_accepted(backend: InferenceBackend) -> None:
    needs(backend, IMAGES)
    content = [{"type": "image", "data": RED_PIXEL}, {"type": "text", "text": "What colour is this?"}]
    request = ChatCompletionRequest.model_validate(
        {
            "model_id": backend.model.provider_resource_id,
            "messages": [{"role": "user", "content": content}],
            "sampling_params": GREEDY.model_dump(),
        }
    )
    response = await backend.provider.chat_completion(request)
    assert response.completion_message.role == "assistant"


async def test_embeddings_have_one_vector_per_content(backend: InferenceBackend) -> None:
    needs(backend, EMBEDDINGS)
    assert backend.embedding_model is not None
    response = await backend.provider.embeddings(
        EmbeddingsRequest(model_id=backend.embedding_model.provider_resource_id, contents=["a llama", "tax law", "x"])
    )
    assert len(response.embeddings) == 3
    assert len({len(v) for v in response.embeddings}) == 1 and len(response.embeddings[0]) > 1


async def test_logprobs_give_the_top_k_per_token(backend: InferenceBackend) -> None:
    needs(backend, LOGPROBS)
    request = chat(
        backend,
        "Hello",
        sampling_params=SamplingParams(strategy=SamplingStrategy.greedy, max_tokens=4),
        logprobs=LogProbConfig(top_k=2),
    )
    response = await backend.provider.chat_completion(request)
    assert response.logprobs is not None and len(response.logprobs) == 4
    assert all(1 <= len(step.logprobs_by_token) <= 2 for step in response.logprobs)
    assert all(lp <= 0.0 for step in response.logprobs for lp in step.logprobs_by_token.values())


async def test_json_schema_output_is_valid(backend: InferenceBackend) -> None:
    needs(backend, JSON_SCHEMA)
    import jsonschema

    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
    }
    request = chat(
        backend,
        "Describe a llama as JSON.",
        response_format=JsonSchemaResponseFormat(json_schema=schema),
        sampling_params=SamplingParams(strategy=SamplingStrategy.greedy, max_tokens=60),
    )
    message = (await backend.provider.chat_completion(request)).completion_message
    jsonschema.validate(json.loads(str(message.content)), schema)
