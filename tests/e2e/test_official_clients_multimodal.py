"""Images and tool calls through the stack with both official clients, on a backend that
handles them (remote::ollama against the fake Ollama server)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from llama_stack_client import LlamaStackClient

from tests.fakes.ollama_model import llama_vision
from tests.fakes.ollama_server import FakeOllama, serve
from tests.live import LiveServer, live_server

pytest.importorskip("ollama")

MODEL = "Llama3.2-11B-Vision-Instruct"
RED_PIXEL = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"
DATA_URL = f"data:image/png;base64,{RED_PIXEL}"
WEATHER_QUESTION = "What is the weather in Paris?"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    fake = FakeOllama(installed=[llama_vision("llama3.2-vision:11b")])
    with serve(fake) as url:
        config: dict[str, Any] = {
            "version": 2,
            "image_name": "multimodal",
            "providers": {
                "inference": [{"provider_id": "ollama", "provider_type": "remote::ollama", "config": {"url": url}}]
            },
            "metadata_store": {"type": "sqlite", "db_path": str(tmp_path_factory.mktemp("mm") / "r.db")},
            "models": [{"model_id": MODEL, "provider_id": "ollama"}],
        }
        with live_server(config) as live:
            yield live


def test_openai_sdk_sends_an_image(server: LiveServer) -> None:
    client = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0)
    content: Any = [
        {"type": "text", "text": "What colour is this?"},
        {"type": "image_url", "image_url": {"url": DATA_URL}},
    ]
    response = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": content}])
    assert "I see 1 image" in (response.choices[0].message.content or "")


def test_openai_sdk_gets_a_tool_call(server: LiveServer) -> None:
    client = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0)
    tool: Any = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
    response = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": WEATHER_QUESTION}], tools=[tool]
    )
    call = response.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}
    assert response.choices[0].finish_reason == "tool_calls"


def test_llama_stack_client_sends_an_image_and_gets_a_tool_call(server: LiveServer) -> None:
    client = LlamaStackClient(base_url=server.base_url)
    content: Any = [{"type": "image", "url": {"uri": DATA_URL}}, {"type": "text", "text": "Describe it."}]
    response = client.inference.chat_completion(model_id=MODEL, messages=[{"role": "user", "content": content}])
    assert "I see 1 image" in str(response.completion_message.content)

    tools: Any = [
        {
            "tool_name": "get_weather",
            "description": "Current weather in a city",
            "parameters": {"city": {"param_type": "string", "required": True}},
        }
    ]
    response = client.inference.chat_completion(
        model_id=MODEL, messages=[{"role": "user", "content": WEATHER_QUESTION}], tools=tools
    )
    calls = response.completion_message.tool_calls
    assert [(c.tool_name, c.arguments) for c in calls] == [("get_weather", {"city": "Paris"})]
    streamed = list(
        client.inference.chat_completion(
            model_id=MODEL, messages=[{"role": "user", "content": WEATHER_QUESTION}], tools=tools, stream=True
        )
    )
    parsed = [
        c.event.delta.content
        for c in streamed
        if not isinstance(c.event.delta, str) and c.event.delta.parse_status == "success"
    ]
    assert [(p.tool_name, p.arguments) for p in parsed] == [("get_weather", {"city": "Paris"})]
