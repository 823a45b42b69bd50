"""The OpenAI-compatible adapter family, over its own HTTP client against the fake server
(tests/fakes/openai_server.py): what each request becomes on the wire and what each answer
becomes in our types. Faults, retries, keys and cancellation: test_openai_compat_faults.py;
the HTTP client itself: test_openai_compat_http.py."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from llama_stack.apis.common import (
    URL,
    CompletionMessage,
    ImageContentItem,
    SamplingParams,
    SamplingStrategy,
    StopReason,
    SystemMessage,
    TextContentItem,
    ToolCall,
    ToolChoice,
    ToolDefinition,
    ToolParamDefinition,
    ToolResponseMessage,
    UserMessage,
)
from llama_stack.apis.errors import InvalidRequest
from llama_stack.apis.inference import (
    ChatCompletionEventType,
    ChatCompletionRequest,
    ChatCompletionResponseStreamChunk,
    CompletionRequest,
    EmbeddingsRequest,
    JsonSchemaResponseFormat,
    LogProbConfig,
    ToolCallDelta,
    ToolCallParseStatus,
)
from llama_stack.apis.models import Model, ModelType
from llama_stack.distribution.provider import Deps
from llama_stack.providers.inference.openai_compat import SPECS, OpenAICompatConfig
from tests.fakes.openai_server import FakeOpenAIServer

MODEL = "meta-llama/Llama-3.2-3B-Instruct"
EMBEDDER = "nomic-ai/nomic-embed-text-v1.5"
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 16).decode()
WEATHER_TOOL = ToolDefinition(
    tool_name="get_weather",
    description="The weather in a city",
    parameters={
        "city": ToolParamDefinition(param_type="str", description="the city"),
        "days": ToolParamDefinition(param_type="int", required=False, default=1),
    },
)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server


async def make(fake: FakeOpenAIServer, provider_type: str = "remote::vllm", **config: Any) -> Any:
    settings = OpenAICompatConfig(url=fake.base_url, retry_backoff_s=0.01, timeout_s=5, **config)
    return await SPECS[provider_type].factory(settings, Deps())


@pytest.fixture
async def vllm(fake: FakeOpenAIServer) -> AsyncIterator[Any]:
    provider = await make(fake)
    yield provider
    await provider.shutdown()


def chat(*messages: Any, **fields: Any) -> ChatCompletionRequest:
    return ChatCompletionRequest(model_id=MODEL, messages=list(messages), **fields)


async def collect(stream: AsyncIterator[ChatCompletionResponseStreamChunk]) -> list[Any]:
    return [chunk.event async for chunk in stream]


# --- models -----------------------------------------------------------------------------------


async def test_register_maps_llama_ids_and_checks_the_served_list(fake: FakeOpenAIServer, vllm: Any) -> None:
    model = Model(identifier="Llama3.2-3B-Instruct", provider_resource_id="Llama3.2-3B-Instruct", provider_id="vllm")
    registered = await vllm.register_model(model)
    assert registered.provider_resource_id == MODEL

    missing = Model(identifier="Llama3.3-70B-Instruct", provider_resource_id="Llama3.3-70B-Instruct", provider_id="v")
    with pytest.raises(InvalidRequest) as caught:
        await vllm.register_model(missing)
    assert "meta-llama/Llama-3.3-70B-Instruct" in caught.value.message
    assert MODEL in caught.value.message and EMBEDDER in caught.value.message  # lists what it serves


async def test_vendor_tables_and_config_overrides_name_the_model(fake: FakeOpenAIServer) -> None:
    together = await make(fake, "remote::together", api_key="k")
    model = Model(identifier="l3", provider_resource_id="meta-llama/Llama-3.2-3B-Instruct", provider_id="t")
    assert (await together.register_model(model)).provider_resource_id == "meta-llama/Llama-3.2-3B-Instruct-Turbo"
    fireworks = await make(fake, "remote::fireworks", api_key="k", model_ids={"Llama3.2-3B-Instruct": "my/ft-3b"})
    assert (await fireworks.register_model(model)).provider_resource_id == "my/ft-3b"  # any spelling matches
    assert fireworks.model_name("Llama3.1-8B-Instruct") == "accounts/fireworks/models/llama-v3p1-8b-instruct"
    assert fireworks.model_name("not-a-llama") == "not-a-llama"


# --- chat ------------------------------------------------------------------------------------


async def test_chat_sends_messages_images_tool_history_and_greedy_sampling(fake: FakeOpenAIServer, vllm: Any) -> None:
    history = [
        SystemMessage(content="Be brief."),
        UserMessage(content="What is the weather in Paris?"),
        CompletionMessage(
            content="",
            stop_reason=StopReason.end_of_message,
            tool_calls=[ToolCall(call_id="c1", tool_name="get_weather", arguments={"city": "Paris"})],
        ),
        ToolResponseMessage(call_id="c1", tool_name="get_weather", content="sunny"),
        UserMessage(
            content=[
                TextContentItem(text="And these?"),
                ImageContentItem(data=PNG),
                ImageContentItem(url=URL(uri="https://example.com/cat.jpg")),
            ]
        ),
    ]
    sampling = SamplingParams(max_tokens=50, seed=7)
    response = await vllm.chat_completion(chat(*history, sampling_params=sampling))

    sent = fake.state.last_body
    assert [m["role"] for m in sent["messages"]] == ["system", "user", "assistant", "tool", "user"]
    assistant, tool, user = sent["messages"][2:]
    assert assistant["tool_calls"] == [
        {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
    ]
    assert tool == {"role": "tool", "tool_call_id": "c1", "content": "sunny"}
    assert user["content"] == [
        {"type": "text", "text": "And these?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
    ]
    assert (sent["temperature"], sent["max_tokens"], sent["seed"]) == (0.0, 50, 7)
    assert "tools" not in sent and "tool_choice" not in sent and "stream" not in sent

    assert response.completion_message.content.startswith("I see 2 images.")
    assert response.completion_message.stop_reason == StopReason.end_of_turn
    assert response.usage is not None and response.usage.completion_tokens > 0


async def test_sampling_strategies_and_vendor_extras(fake: FakeOpenAIServer, vllm: Any) -> None:
    top_k = SamplingParams(strategy=SamplingStrategy.top_k, temperature=0.7, top_k=40, repetition_penalty=1.1)
    await vllm.chat_completion(chat(UserMessage(content="hi"), sampling_params=top_k))
    sent = fake.state.last_body
    assert (sent["temperature"], sent["top_k"], sent["repetition_penalty"]) == (0.7, 40, 1.1)

    openai = await make(fake, "remote::openai", api_key="k")
    top_p = SamplingParams(strategy=SamplingStrategy.top_p, temperature=0.5, top_p=0.9, top_k=40)
    await openai.chat_completion(chat(UserMessage(content="hi"), sampling_params=top_p))
    sent = fake.state.last_body
    assert (sent["temperature"], sent["top_p"]) == (0.5, 0.9)
    assert "top_k" not in sent and "max_tokens" not in sent  # OpenAI itself refuses unknown fields


async def test_tools_become_functions_and_calls_come_back_parsed(fake: FakeOpenAIServer, vllm: Any) -> None:
    request = chat(
        UserMessage(content="What is the weather in Paris?"),
        tools=[WEATHER_TOOL, ToolDefinition(tool_name="brave_search")],
        tool_choice=ToolChoice.auto,
    )
    response = await vllm.chat_completion(request)
    sent = fake.state.last_body
    weather, search = sent["tools"]
    assert weather == {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string", "description": "the city"},
                    "days": {"type": "integer", "default": 1},
                },
                "required": ["city"],
            },
        },
    }
    assert search["function"]["parameters"]["required"] == ["query"]  # builtins get a schema
    assert sent["tool_choice"] == "auto"

    message = response.completion_message
    assert message.stop_reason == StopReason.end_of_message
    assert [(c.tool_name, c.arguments) for c in message.tool_calls] == [("get_weather", {"city": "Paris"})]
    assert message.tool_calls[0].call_id.startswith("call_")


async def test_streamed_tool_call_arrives_in_fragments_then_parsed(vllm: Any) -> None:
    request = chat(UserMessage(content="What is the weather in Paris?"), tools=[WEATHER_TOOL], stream=True)
    events = await collect(vllm.chat_completion_stream(request))
    assert events[0].event_type == ChatCompletionEventType.start
    deltas = [e.delta for e in events if isinstance(e.delta, ToolCallDelta)]
    assert deltas[0].parse_status == ToolCallParseStatus.started
    fragments = [str(d.content) for d in deltas if d.parse_status == ToolCallParseStatus.in_progress]
    assert len(fragments) > 1 and "".join(fragments) == '{"city": "Paris"}'
    final = deltas[-1]
    assert final.parse_status == ToolCallParseStatus.success and isinstance(final.content, ToolCall)
    assert (final.content.tool_name, final.content.arguments) == ("get_weather", {"city": "Paris"})
    assert events[-1].event_type == ChatCompletionEventType.complete
    assert events[-1].stop_reason == StopReason.end_of_message


async def test_cut_off_tool_arguments_stay_raw_text(vllm: Any) -> None:
    """Arguments that are not a JSON object never become a ToolCall (documented in convert.py)."""
    fields: dict[str, Any] = {"tools": [WEATHER_TOOL], "sampling_params": SamplingParams(max_tokens=1)}
    response = await vllm.chat_completion(chat(UserMessage(content="What is the weather in Paris?"), **fields))
    assert response.completion_message.tool_calls == []
    assert response.completion_message.content == 'get_weather({"city":)'
    assert response.completion_message.stop_reason == StopReason.out_of_tokens

    events = await collect(vllm.chat_completion_stream(chat(UserMessage(content="weather in Paris"), **fields)))
    final = [e.delta for e in events if isinstance(e.delta, ToolCallDelta)][-1]
    assert final.parse_status == ToolCallParseStatus.failure and final.content == 'get_weather({"city":)'


async def test_required_tool_choice_forces_a_call(fake: FakeOpenAIServer, vllm: Any) -> None:
    request = chat(UserMessage(content="hello"), tools=[WEATHER_TOOL], tool_choice=ToolChoice.required)
    response = await vllm.chat_completion(request)
    assert fake.state.last_body["tool_choice"] == "required"
    assert response.completion_message.tool_calls[0].tool_name == "get_weather"


async def test_stream_text_usage_and_stop_reasons(fake: FakeOpenAIServer, vllm: Any) -> None:
    whole = await vllm.chat_completion(chat(UserMessage(content="tell me a story")))
    events = await collect(vllm.chat_completion_stream(chat(UserMessage(content="tell me a story"), stream=True)))
    assert fake.state.last_body["stream_options"] == {"include_usage": True}
    text = "".join(e.delta for e in events if e.event_type == ChatCompletionEventType.progress)
    assert text == whole.completion_message.content
    complete = events[-1]
    assert complete.stop_reason == StopReason.end_of_turn
    assert complete.usage is not None and complete.usage == whole.usage

    short = chat(UserMessage(content="tell me a story"), sampling_params=SamplingParams(max_tokens=2))
    assert (await vllm.chat_completion(short)).completion_message.stop_reason == StopReason.out_of_tokens
    streamed = await collect(vllm.chat_completion_stream(short.model_copy(update={"stream": True})))
    assert streamed[-1].stop_reason == StopReason.out_of_tokens
    assert streamed[-1].usage is not None and streamed[-1].usage.completion_tokens == 2


async def test_json_schema_response_format(fake: FakeOpenAIServer, vllm: Any) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}, "temp": {"type": "number"}}}
    request = chat(UserMessage(content="weather as JSON"), response_format=JsonSchemaResponseFormat(json_schema=schema))
    response = await vllm.chat_completion(request)
    assert fake.state.last_body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "response", "schema": schema},
    }
    assert set(json.loads(str(response.completion_message.content))) == {"city", "temp"}


async def test_logprobs_carry_the_top_tokens(fake: FakeOpenAIServer, vllm: Any) -> None:
    request = chat(UserMessage(content="hi there"), logprobs=LogProbConfig(top_k=3))
    response = await vllm.chat_completion(request)
    assert (fake.state.last_body["logprobs"], fake.state.last_body["top_logprobs"]) == (True, 3)
    assert response.logprobs is not None
    assert len(response.logprobs) == len(str(response.completion_message.content).split())
    assert all(len(t.logprobs_by_token) == 3 for t in response.logprobs)

    events = await collect(vllm.chat_completion_stream(request.model_copy(update={"stream": True})))
    assert sum(len(e.logprobs or []) for e in events) == len(response.logprobs)


# --- completion and embeddings ----------------------------------------------------------------


async def test_completion_through_the_completions_api(fake: FakeOpenAIServer, vllm: Any) -> None:
    request = CompletionRequest(
        model_id=MODEL, content="Once upon a time", sampling_params=SamplingParams(max_tokens=20)
    )
    response = await vllm.completion(request)
    assert fake.state.last_body["prompt"] == "Once upon a time"
    assert response.content == "and then Once upon a time again."
    assert response.stop_reason == StopReason.end_of_turn

    chunks = [c async for c in vllm.completion_stream(request.model_copy(update={"stream": True}))]
    assert "".join(c.delta for c in chunks) == response.content
    assert chunks[-1].stop_reason == StopReason.end_of_turn and chunks[-1].usage == response.usage

    with_logprobs = request.model_copy(update={"logprobs": LogProbConfig(top_k=2)})
    scored = await vllm.completion(with_logprobs)
    assert scored.logprobs is not None and all(len(t.logprobs_by_token) == 2 for t in scored.logprobs)

    with pytest.raises(InvalidRequest, match="text only"):
        vllm.completion_stream(CompletionRequest(model_id=MODEL, content=ImageContentItem(data=PNG)))


async def test_embeddings_are_deterministic_vectors(fake: FakeOpenAIServer, vllm: Any) -> None:
    model = Model(identifier="e", provider_resource_id=EMBEDDER, provider_id="v", model_type=ModelType.embedding)
    await vllm.register_model(model)
    request = EmbeddingsRequest(model_id=EMBEDDER, contents=["a cat", "a dog", "a cat"])
    response = await vllm.embeddings(request)
    assert fake.state.last_body["input"] == ["a cat", "a dog", "a cat"]
    first, second, third = response.embeddings
    assert len(first) == 16 and first == third and first != second
    assert response.usage is not None and response.usage.prompt_tokens == 6
