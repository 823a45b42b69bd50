"""The /v1 face driven by the official `openai` SDK, sync and async, over a real server."""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.live import LiveServer, live_server

WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "City name"}},
            "required": ["city"],
        },
    },
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    config: dict[str, Any] = {
        "version": 2,
        "image_name": "openai-face",
        "providers": {"inference": [{"provider_id": "scripted", "provider_type": "test::scripted"}]},
        "metadata_store": {"type": "sqlite", "db_path": str(tmp_path_factory.mktemp("oai") / "r.db")},
        "models": [{"model_id": "echo"}, {"model_id": "embedder", "model_type": "embedding"}],
    }
    with live_server(config) as live:
        yield live


@pytest.fixture
def client(server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0)


def test_models(client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list()] == ["echo", "embedder"]
    assert client.models.retrieve("echo").owned_by == "scripted"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nope")


def test_chat_completion(client: openai.OpenAI) -> None:
    response = client.chat.completions.create(
        model="echo", messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi there"}]
    )
    choice = response.choices[0]
    assert choice.message.role == "assistant" and choice.message.content == "echo: hi there"
    assert choice.finish_reason == "stop"
    assert response.usage is not None and response.usage.completion_tokens == 3
    assert response.object == "chat.completion" and response.model == "echo"


def test_max_tokens_finishes_with_length(client: openai.OpenAI) -> None:
    response = client.chat.completions.create(
        model="echo", messages=[{"role": "user", "content": "one two three four"}], max_tokens=2
    )
    assert response.choices[0].message.content == "echo: one"
    assert response.choices[0].finish_reason == "length"


def test_chat_stream_with_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="echo",
        messages=[{"role": "user", "content": "a b c"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: a b c"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == 3


def test_stream_ends_with_done(server: LiveServer) -> None:
    body = {"model": "echo", "messages": [{"role": "user", "content": "x"}], "stream": True}
    response = httpx.post(f"{server.base_url}/v1/chat/completions", json=body)
    assert response.text.endswith("data: [DONE]\n\n")


def test_stop_sequences_cut_the_output(client: openai.OpenAI) -> None:
    messages: Any = [{"role": "user", "content": "alpha beta gamma delta"}]
    whole = client.chat.completions.create(model="echo", messages=messages, stop=["gamma"])
    assert whole.choices[0].message.content == "echo: alpha beta "
    assert whole.choices[0].finish_reason == "stop"
    streamed = client.chat.completions.create(model="echo", messages=messages, stop=["a gam"], stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
    assert text == "echo: alpha bet"


def test_tool_calls_round_trip(client: openai.OpenAI) -> None:
    messages: Any = [{"role": "user", "content": "What is the weather in Paris?"}]
    response = client.chat.completions.create(model="echo", messages=messages, tools=[WEATHER_TOOL])
    choice = response.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}

    stream = client.chat.completions.create(model="echo", messages=messages, tools=[WEATHER_TOOL], stream=True)
    deltas = [c.choices[0].delta for c in stream if c.choices]
    calls = [tc for d in deltas for tc in d.tool_calls or []]
    assert [(tc.index, tc.function.name) for tc in calls] == [(0, "get_weather")]

    follow_up = [
        *messages,
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "18 C and sunny"},
    ]
    answer = client.chat.completions.create(model="echo", messages=follow_up, tools=[WEATHER_TOOL])
    assert answer.choices[0].message.content == "echo: 18 C and sunny"


def test_tool_choice_none_hides_the_tools(client: openai.OpenAI) -> None:
    messages: Any = [{"role": "user", "content": "What is the weather in Paris?"}]
    response = client.chat.completions.create(model="echo", messages=messages, tools=[WEATHER_TOOL], tool_choice="none")
    assert response.choices[0].message.tool_calls is None
    assert response.choices[0].finish_reason == "stop"


def test_completions(client: openai.OpenAI) -> None:
    response = client.completions.create(model="echo", prompt="once upon", max_tokens=50)
    assert response.choices[0].text == "echo: once upon" and response.choices[0].finish_reason == "stop"
    streamed = client.completions.create(model="echo", prompt="once upon", max_tokens=50, stream=True)
    assert "".join(c.choices[0].text for c in streamed if c.choices) == "echo: once upon"


def test_embeddings_float_and_base64(client: openai.OpenAI, server: LiveServer) -> None:
    # The SDK asks for base64 by default and decodes it.
    response = client.embeddings.create(model="embedder", input=["abc", "de"])
    assert [d.embedding for d in response.data] == [[3.0, 1.0], [2.0, 1.0]]
    raw = httpx.post(
        f"{server.base_url}/v1/embeddings", json={"model": "embedder", "input": "abcd", "encoding_format": "base64"}
    ).json()
    assert list(struct.unpack("<2f", base64.b64decode(raw["data"][0]["embedding"]))) == [4.0, 1.0]


def test_errors_use_openai_envelope(client: openai.OpenAI, server: LiveServer) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": "x"}])
    assert "'gpt-9' is not registered" in str(missing.value)
    with pytest.raises(openai.BadRequestError, match="only n=1"):
        client.chat.completions.create(model="echo", messages=[{"role": "user", "content": "x"}], n=2)
    with pytest.raises(openai.BadRequestError, match="unknown tool_call_id"):
        client.chat.completions.create(model="echo", messages=[{"role": "tool", "tool_call_id": "z", "content": "x"}])
    response = httpx.post(f"{server.base_url}/v1/chat/completions", json={"model": "echo"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "messages" and error["type"] == "invalid_request"
    with pytest.raises(openai.BadRequestError, match="not an embedding model"):
        client.embeddings.create(model="echo", input="x")


def test_a_stream_that_fails_at_once_keeps_its_status(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as failure:
        client.chat.completions.create(model="echo", messages=[{"role": "user", "content": "fail-now"}], stream=True)
    assert failure.value.status_code == 502 and "refused the request" in str(failure.value)


def test_mid_stream_failure_raises_in_the_sdk(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="echo", messages=[{"role": "user", "content": "fail-midway and more"}], stream=True
    )
    with pytest.raises(openai.APIError, match="died mid-stream"):
        list(stream)


async def test_async_client(server: LiveServer) -> None:
    client = openai.AsyncOpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0)
    response = await client.chat.completions.create(model="echo", messages=[{"role": "user", "content": "async"}])
    assert response.choices[0].message.content == "echo: async"
    stream = await client.chat.completions.create(
        model="echo", messages=[{"role": "user", "content": "async stream"}], stream=True
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "echo: async stream"
    await client.close()
