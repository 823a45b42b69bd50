"""The OpenAI-compatible providers inside a running stack (in-process, over ASGI): the provider-data
header reaches the API key, upstream faults keep their status codes on both faces, startup fails
fast on an unreachable vLLM, and the official openai SDK gets streamed tool calls end to end
(SDK -> our /v1 face -> remote::vllm -> the fake OpenAI server)."""

from __future__ import annotations

import importlib
import json
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from llama_stack.distribution.registry import install_provider
from llama_stack.distribution.resolver import Stack, build_stack
from llama_stack.distribution.spec import ConfigError, parse_run_config
from llama_stack.providers.inference.openai_compat import together_spec, vllm_spec
from llama_stack.server.app import create_app
from tests.fakes.openai_server import FakeOpenAIServer

MODEL = "meta-llama/Llama-3.2-3B-Instruct"
PROVIDER_DATA = "X-LlamaStack-ProviderData"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server


def run_config(tmp_path: Path, vllm_url: str, together_url: str) -> dict[str, Any]:
    fast = {"retry_backoff_s": 0.01, "timeout_s": 5}
    return {
        "version": 2,
        "image_name": "remote-test",
        "providers": {
            "inference": [
                {"provider_id": "vllm", "provider_type": "remote::vllm", "config": {"url": vllm_url, **fast}},
                {"provider_id": "together", "provider_type": "remote::together", "config": {"url": together_url}},
            ]
        },
        "metadata_store": {"type": "sqlite", "db_path": str(tmp_path / "registry.db")},
        "models": [
            {"model_id": "Llama3.2-3B-Instruct", "provider_id": "vllm"},
            {"model_id": "together-3b", "provider_id": "together", "provider_model_id": "Llama3.2-3B-Instruct"},
        ],
    }


@pytest.fixture
async def stack(fake: FakeOpenAIServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Stack]:
    monkeypatch.delenv("TOGETHER_API_KEY", raising=False)
    install_provider(vllm_spec)  # what the package's entry points provide once installed
    install_provider(together_spec)
    fake.state.reset()
    built = await build_stack(parse_run_config(run_config(tmp_path, fake.base_url, fake.base_url), env={}))
    yield built
    await built.shutdown()


@pytest.fixture
async def http(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(stack))
    async with httpx.AsyncClient(transport=transport, base_url="http://stack") as client:
        yield client


def chat_body(model: str, text: str, **extra: Any) -> dict[str, Any]:
    return {"model_id": model, "messages": [{"role": "user", "content": text}], **extra}


async def test_models_are_registered_under_the_backends_names(stack: Stack) -> None:
    models = {m.identifier: m.provider_resource_id for m in await stack.models.list_models()}
    assert models == {"Llama3.2-3B-Instruct": MODEL, "together-3b": "meta-llama/Llama-3.2-3B-Instruct-Turbo"}


async def test_the_provider_data_header_carries_the_api_key(fake: FakeOpenAIServer, http: httpx.AsyncClient) -> None:
    fake.state.models = (*fake.state.models, "meta-llama/Llama-3.2-3B-Instruct-Turbo")
    try:
        missing = await http.post("/alpha/inference/chat-completion", json=chat_body("together-3b", "hi"))
        assert missing.status_code == 400 and "together_api_key" in missing.text and "TOGETHER_API_KEY" in missing.text

        headers = {PROVIDER_DATA: json.dumps({"together_api_key": "from-header"})}
        answered = await http.post(
            "/alpha/inference/chat-completion", json=chat_body("together-3b", "hi"), headers=headers
        )
        assert answered.status_code == 200, answered.text
        assert fake.state.authorizations[-1] == "Bearer from-header"
    finally:
        fake.state.models = fake.state.models[:-1]


async def test_upstream_faults_keep_their_status_on_both_faces(fake: FakeOpenAIServer, http: httpx.AsyncClient) -> None:
    fake.state.fail_next("429", times=3, retry_after=0.01)
    limited = await http.post("/alpha/inference/chat-completion", json=chat_body("Llama3.2-3B-Instruct", "hi"))
    assert limited.status_code == 429 and "retry-after" in limited.headers

    failed = await http.post(
        "/v1/chat/completions",
        json={"model": "Llama3.2-3B-Instruct", "messages": [{"role": "user", "content": "[[fake:500]]"}]},
    )
    assert failed.status_code == 502 and "remote::vllm" in failed.json()["error"]["message"]

    streamed = await http.post(
        "/alpha/inference/chat-completion", json=chat_body("Llama3.2-3B-Instruct", "[[fake:die]] go on", stream=True)
    )
    assert streamed.status_code == 200  # the failure came after the first chunks: an error event
    frames = [json.loads(f.removeprefix("data: ")) for f in streamed.text.split("\n\n") if f]
    assert "error" in frames[-1] and "remote::vllm" in frames[-1]["error"]["message"]


async def test_startup_fails_fast_when_vllm_is_unreachable(fake: FakeOpenAIServer, tmp_path: Path) -> None:
    install_provider(vllm_spec)
    install_provider(together_spec)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}/v1"
    config = parse_run_config(run_config(tmp_path, closed, fake.base_url), env={})
    with pytest.raises(ConfigError, match=r"models\[0\]: cannot reach remote::vllm at http://127\.0\.0\.1"):
        await build_stack(config)


async def test_official_openai_sdk_streams_tool_calls_end_to_end(stack: Stack) -> None:
    # The SDK's HTTP library (httpx or its successor httpx2) carries its own ASGI transport.
    http_library = importlib.import_module(openai.DefaultAsyncHttpxClient.__mro__[1].__module__.split(".")[0])
    http_client = openai.DefaultAsyncHttpxClient(transport=http_library.ASGITransport(app=create_app(stack)))
    client = openai.AsyncOpenAI(base_url="http://stack/v1", api_key="unused", http_client=http_client, max_retries=0)
    tool: Any = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
    stream = await client.chat.completions.create(
        model="Llama3.2-3B-Instruct",
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        tools=[tool],
        stream=True,
    )
    arguments, names, finish = "", [], None
    async for chunk in stream:
        for choice in chunk.choices:
            for call in choice.delta.tool_calls or []:
                if call.function is not None:
                    names.append(call.function.name)
                    arguments += call.function.arguments or ""
            finish = choice.finish_reason or finish
    assert "get_weather" in names and json.loads(arguments) == {"city": "Paris"}
    assert finish == "tool_calls"
    await client.close()
