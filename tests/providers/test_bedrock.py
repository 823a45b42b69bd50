"""remote::bedrock through a real botocore client: botocore's Stubber checks the exact Converse
parameters and serves errors; streams come as real event-stream bytes (tests/fakes/bedrock_*.py)."""

from __future__ import annotations

import base64
import io
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

from llama_stack.apis.common import (
    CompletionMessage,
    ImageContentItem,
    SamplingParams,
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
from llama_stack.apis.errors import InvalidRequest, RateLimited, StackError, UpstreamError, UpstreamTimeout
from llama_stack.apis.inference import (
    ChatCompletionEventType,
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingsRequest,
    JsonSchemaResponseFormat,
    ToolCallDelta,
    ToolCallParseStatus,
)
from llama_stack.apis.models import Model
from llama_stack.distribution.provider import Api, Deps
from llama_stack.distribution.spec import load_run_config, validate_section
from llama_stack.providers.inference.bedrock import BedrockConfig, get_provider_impl, provider_spec
from llama_stack.providers.inference.bedrock.inference import BedrockInference
from tests.fakes.bedrock_runtime import FakeBedrockRuntime
from tests.fakes.bedrock_stream import EventStreamBody, serve_event_stream

MODEL = "meta.llama3-2-11b-instruct-v1:0"
PNG_BYTES = b"\x89PNG\r\n\x1a\n" + b"\0" * 8
CONFIG = BedrockConfig(region_name="us-west-2", aws_access_key_id="test", aws_secret_access_key="test")
WEATHER = ToolDefinition(
    tool_name="get_weather", parameters={"city": ToolParamDefinition(param_type="str", description="the city")}
)


@pytest.fixture(scope="module")
def session() -> boto3.Session:
    return boto3.Session(region_name="us-west-2", aws_access_key_id="test", aws_secret_access_key="test")


@pytest.fixture
def client(session: boto3.Session) -> Any:
    return session.client("bedrock-runtime")


@pytest.fixture
def stubber(client: Any) -> Iterator[Stubber]:
    with Stubber(client) as stub:
        yield stub
        stub.assert_no_pending_responses()


def ask(*messages: Any, **fields: Any) -> ChatCompletionRequest:
    return ChatCompletionRequest(model_id=MODEL, messages=list(messages), **fields)


def converse_answer(content: list[dict[str, Any]], stop: str = "end_turn") -> dict[str, Any]:
    return {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": stop,
        "usage": {"inputTokens": 12, "outputTokens": 5, "totalTokens": 17},
        "metrics": {"latencyMs": 3},
    }


async def test_register_maps_llama_ids_to_bedrock_ids(client: Any) -> None:
    provider = BedrockInference(CONFIG.model_copy(update={"model_ids": {"Llama3.1-8B-Instruct": "us.meta.x"}}), client)
    for given, expected in [
        ("meta-llama/Llama-3.2-3B-Instruct", "meta.llama3-2-3b-instruct-v1:0"),
        ("Llama3.2-1B-Instruct", "meta.llama3-2-1b-instruct-v1:0"),
        ("Llama3.2-90B-Vision-Instruct", "meta.llama3-2-90b-instruct-v1:0"),
        ("meta-llama/Llama-3.1-8B-Instruct", "us.meta.x"),
        ("amazon.titan-embed-text-v2:0", "amazon.titan-embed-text-v2:0"),
    ]:
        model = await provider.register_model(Model(identifier=given, provider_resource_id=given, provider_id="b"))
        assert model.provider_resource_id == expected


async def test_chat_maps_turns_images_tools_and_sampling(client: Any, stubber: Stubber) -> None:
    messages = [
        SystemMessage(content="Be brief."),
        UserMessage(content="What is the weather in Paris?"),
        CompletionMessage(
            content="",
            stop_reason=StopReason.end_of_message,
            tool_calls=[ToolCall(call_id="t1", tool_name="get_weather", arguments={"city": "Paris"})],
        ),
        ToolResponseMessage(call_id="t1", tool_name="get_weather", content="sunny"),
        UserMessage(
            content=[TextContentItem(text="And this?"), ImageContentItem(data=base64.b64encode(PNG_BYTES).decode())]
        ),
    ]
    expected = {
        "modelId": MODEL,
        "system": [{"text": "Be brief."}],
        "messages": [
            {"role": "user", "content": [{"text": "What is the weather in Paris?"}]},
            {
                "role": "assistant",
                "content": [{"toolUse": {"toolUseId": "t1", "name": "get_weather", "input": {"city": "Paris"}}}],
            },
            {
                "role": "user",  # the tool result and the next question share one user turn
                "content": [
                    {"toolResult": {"toolUseId": "t1", "content": [{"text": "sunny"}]}},
                    {"text": "And this?"},
                    {"image": {"format": "png", "source": {"bytes": PNG_BYTES}}},
                ],
            },
        ],
        "inferenceConfig": {"maxTokens": 64, "temperature": 0.0},
        "toolConfig": {
            "tools": [
                {
                    "toolSpec": {
                        "name": "get_weather",
                        "description": "get_weather",
                        "inputSchema": {
                            "json": {
                                "type": "object",
                                "properties": {"city": {"type": "string", "description": "the city"}},
                                "required": ["city"],
                            }
                        },
                    }
                }
            ],
            "toolChoice": {"any": {}},
        },
    }
    answer = converse_answer(
        [{"text": "Checking."}, {"toolUse": {"toolUseId": "t2", "name": "get_weather", "input": {"city": "Lyon"}}}],
        stop="tool_use",
    )
    stubber.add_response("converse", answer, expected)
    provider = BedrockInference(CONFIG, client)
    request = ask(
        *messages, tools=[WEATHER], tool_choice=ToolChoice.required, sampling_params=SamplingParams(max_tokens=64)
    )
    response = await provider.chat_completion(request)
    message = response.completion_message
    assert message.content == "Checking." and message.stop_reason == StopReason.end_of_message
    assert message.tool_calls == [ToolCall(call_id="t2", tool_name="get_weather", arguments={"city": "Lyon"})]
    assert response.usage is not None and (response.usage.prompt_tokens, response.usage.completion_tokens) == (12, 5)


async def test_stop_reasons(client: Any, stubber: Stubber) -> None:
    provider = BedrockInference(CONFIG, client)
    for stop, ours in [("end_turn", StopReason.end_of_turn), ("max_tokens", StopReason.out_of_tokens)]:
        stubber.add_response("converse", converse_answer([{"text": "x"}], stop))
        assert (await provider.chat_completion(ask(UserMessage(content="hi")))).completion_message.stop_reason == ours


@pytest.mark.parametrize(
    ("code", "status", "error"),
    [
        ("ThrottlingException", 429, RateLimited),
        ("ValidationException", 400, InvalidRequest),
        ("ResourceNotFoundException", 404, InvalidRequest),
        ("ModelNotReadyException", 429, UpstreamError),
        ("ServiceUnavailableException", 503, UpstreamError),
        ("InternalServerException", 500, UpstreamError),
        ("ModelTimeoutException", 408, UpstreamTimeout),
        ("AccessDeniedException", 403, UpstreamError),
    ],
)
async def test_client_errors_become_typed_errors(
    client: Any, stubber: Stubber, code: str, status: int, error: type[StackError]
) -> None:
    stubber.add_client_error(
        "converse", service_error_code=code, service_message="upstream says no", http_status_code=status
    )
    with pytest.raises(error) as caught:
        await BedrockInference(CONFIG, client).chat_completion(ask(UserMessage(content="hi")))
    assert "upstream says no" in caught.value.message
    assert "remote::bedrock" in str(caught.value)


async def test_stream_text_and_tool_call(client: Any) -> None:
    FakeBedrockRuntime().install(client)
    provider = BedrockInference(CONFIG, client)
    events = [c.event async for c in provider.chat_completion_stream(ask(UserMessage(content="hello there")))]
    assert events[0].event_type == ChatCompletionEventType.start
    text = "".join(e.delta for e in events if isinstance(e.delta, str))
    assert text == "This is the fake reply to: hello there"
    assert events[-1].stop_reason == StopReason.end_of_turn and events[-1].usage is not None

    weather = ask(UserMessage(content="What is the weather in Paris?"), tools=[WEATHER])
    deltas = [c.event.delta async for c in provider.chat_completion_stream(weather)]
    calls = [d for d in deltas if isinstance(d, ToolCallDelta)]
    assert calls[0].parse_status == ToolCallParseStatus.started
    assert (
        "".join(str(d.content) for d in calls if d.parse_status == ToolCallParseStatus.in_progress)
        == '{"city": "Paris"}'
    )
    assert calls[-1].parse_status == ToolCallParseStatus.success
    assert isinstance(calls[-1].content, ToolCall) and calls[-1].content.arguments == {"city": "Paris"}


async def test_stream_errors_midway_and_truncation(client: Any) -> None:
    provider = BedrockInference(CONFIG, client)
    start: list[dict[str, Any]] = [
        {"messageStart": {"role": "assistant"}},
        {"contentBlockDelta": {"delta": {"text": "Hi"}, "contentBlockIndex": 0}},
    ]
    serve_event_stream(
        client, "ConverseStream", EventStreamBody([*start, {"throttlingException": {"message": "slow down"}}])
    )
    received: list[Any] = []
    with pytest.raises(RateLimited, match="slow down"):
        async for chunk in provider.chat_completion_stream(ask(UserMessage(content="hi"))):
            received.append(chunk)
    assert len(received) == 2  # start and "Hi" arrived before the error

    serve_event_stream(client, "ConverseStream", EventStreamBody(start))
    with pytest.raises(UpstreamError, match="before the answer was complete"):
        _ = [c async for c in provider.chat_completion_stream(ask(UserMessage(content="hi")))]

    with pytest.raises(InvalidRequest, match="response_format"):  # refused on the call itself
        provider.chat_completion_stream(
            ask(UserMessage(content="hi"), response_format=JsonSchemaResponseFormat(json_schema={}))
        )


async def test_closing_a_stream_early_closes_the_http_body(client: Any) -> None:
    fake = FakeBedrockRuntime(delay_s=0.01)
    fake.install(client)
    provider = BedrockInference(CONFIG, client)
    stream = provider.chat_completion_stream(ask(UserMessage(content=" ".join(["word"] * 200))))
    for _ in range(3):
        await anext(stream)
    assert fake.open_streams == 1
    await stream.aclose()
    assert fake.streams[0].closed and fake.open_streams == 0
    assert fake.streams[0].sent < len(fake.streams[0].frames)


async def test_completion_and_embeddings_through_invoke_model(client: Any, stubber: Stubber) -> None:
    provider = BedrockInference(CONFIG, client)
    answer = json.dumps(
        {"generation": " and more", "stop_reason": "length", "prompt_token_count": 3, "generation_token_count": 2}
    ).encode()
    expected = {
        "modelId": MODEL,
        "body": json.dumps({"prompt": "Once upon a", "max_gen_len": 2, "temperature": 0.0}),
        "contentType": "application/json",
        "accept": "application/json",
    }
    stubber.add_response(
        "invoke_model",
        {"body": StreamingBody(io.BytesIO(answer), len(answer)), "contentType": "application/json"},
        expected,
    )
    completion = CompletionRequest(model_id=MODEL, content="Once upon a", sampling_params=SamplingParams(max_tokens=2))
    response = await provider.completion(completion)
    assert (response.content, response.stop_reason) == (" and more", StopReason.out_of_tokens)
    assert response.usage is not None and response.usage.completion_tokens == 2

    for text in ("a cat", "a dog"):
        vector = json.dumps({"embedding": [float(len(text)), 0.5], "inputTextTokenCount": 2}).encode()
        stubber.add_response(
            "invoke_model",
            {"body": StreamingBody(io.BytesIO(vector), len(vector)), "contentType": "application/json"},
            {
                "modelId": "amazon.titan-embed-text-v2:0",
                "body": json.dumps({"inputText": text}),
                "contentType": "application/json",
            },
        )
    embedded = await provider.embeddings(
        EmbeddingsRequest(model_id="amazon.titan-embed-text-v2:0", contents=["a cat", "a dog"])
    )
    assert embedded.embeddings == [[5.0, 0.5], [5.0, 0.5]] and embedded.usage is not None


async def test_completion_stream(client: Any) -> None:
    FakeBedrockRuntime().install(client)
    provider = BedrockInference(CONFIG, client)
    request = CompletionRequest(
        model_id=MODEL, content="Once upon a time", sampling_params=SamplingParams(max_tokens=3)
    )
    chunks = [c async for c in provider.completion_stream(request)]
    assert "".join(c.delta for c in chunks) == "and then Once"
    assert chunks[-1].stop_reason == StopReason.out_of_tokens and chunks[-1].usage is not None


async def test_unreachable_endpoint_and_factory(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    settings = CONFIG.model_copy(update={"endpoint_url": url, "max_retries": 0, "connect_timeout_s": 1.0})
    provider = await get_provider_impl(settings, Deps())
    started = time.monotonic()
    with pytest.raises(UpstreamError, match="cannot reach remote::bedrock"):
        await provider.chat_completion(ask(UserMessage(content="hi")))
    assert time.monotonic() - started < 5
    await provider.shutdown()

    for name in ("AWS_DEFAULT_REGION", "AWS_REGION", "AWS_PROFILE", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    with pytest.raises(ValueError, match="region"):
        await get_provider_impl(BedrockConfig(), Deps())


def test_the_bedrock_distribution_config_is_valid() -> None:
    run_yaml = Path(__file__).resolve().parents[2] / "distributions" / "bedrock" / "run.yaml"
    config = load_run_config(run_yaml, env={})
    (entry,) = config.providers[Api.inference]
    assert entry.provider_type == provider_spec.provider_type == "remote::bedrock"
    settings = validate_section(BedrockConfig, entry.config, ("providers", "inference", 0, "config"))
    assert isinstance(settings, BedrockConfig) and settings.region_name == "us-west-2"
    assert settings.aws_access_key_id is None  # empty: boto3's own credential chain decides
    assert {m.model_type for m in config.models} == {"llm", "embedding"}
