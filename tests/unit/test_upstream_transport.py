"""The OpenAI-compatible provider over a plugged-in transport: an httpx.MockTransport stands in
for the upstream's HTTP, so what the provider sends and how it reads answers and streams is
checked without a socket."""

from __future__ import annotations

import json

import httpx
import pytest

from llama_stack.apis.common import UserMessage
from llama_stack.apis.errors import InvalidRequest
from llama_stack.apis.inference import ChatCompletionRequest
from llama_stack.providers.inference.openai_compat.client import HttpxTransport
from llama_stack.providers.inference.openai_compat.config import OpenAICompatConfig
from llama_stack.providers.inference.openai_compat.inference import OpenAICompatInference
from llama_stack.providers.inference.openai_compat.vendors import VLLM

URL = "http://upstream.test/v1"


def provider(handler: httpx.MockTransport) -> OpenAICompatInference:
    config = OpenAICompatConfig(url=URL, api_key="sk-test", max_retries=0)
    return OpenAICompatInference(VLLM, config, HttpxTransport(URL, handler))


def ask(text: str) -> ChatCompletionRequest:
    return ChatCompletionRequest(model_id="served-model", messages=[UserMessage(content=text)])


def sse(*events: object) -> bytes:
    return b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events) + b"data: [DONE]\n\n"


async def test_a_chat_completion_goes_out_as_openai_json_and_comes_back_typed() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        body = {
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi there"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2},
        }
        return httpx.Response(200, json=body)

    response = await provider(httpx.MockTransport(answer)).chat_completion(ask("hello"))
    assert response.completion_message.content == "hi there"
    assert response.usage is not None and response.usage.total_tokens == 5
    sent = seen[0]
    assert str(sent.url) == f"{URL}/chat/completions" and sent.headers["authorization"] == "Bearer sk-test"
    assert json.loads(sent.content)["messages"] == [{"role": "user", "content": "hello"}]


async def test_an_upstream_error_status_is_the_stacks_error() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"error": {"message": "no such model"}})

    with pytest.raises(InvalidRequest, match="no such model"):
        await provider(httpx.MockTransport(refuse)).chat_completion(ask("hello"))


async def test_a_stream_is_read_as_it_comes() -> None:
    def stream(request: httpx.Request) -> httpx.Response:
        chunks = [
            {"choices": [{"index": 0, "delta": {"content": "one"}, "finish_reason": None}]},
            {"choices": [{"index": 0, "delta": {"content": " two"}, "finish_reason": "stop"}]},
        ]
        return httpx.Response(200, content=sse(*chunks), headers={"content-type": "text/event-stream"})

    events = [c.event async for c in provider(httpx.MockTransport(stream)).chat_completion_stream(ask("count"))]
    assert [e.event_type for e in events] == ["start", "progress", "progress", "complete"]
    assert "".join(e.delta for e in events if isinstance(e.delta, str)) == "one two"
