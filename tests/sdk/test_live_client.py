"""The SDK against the real server (scripted inference and agents providers) over real HTTP."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest

from llama_stack.apis.common import SystemMessage, UserMessage
from llama_stack.apis.inference import ChatCompletionResponseStreamChunk
from llama_stack.client import (
    AsyncLlamaStackClient,
    BadRequestError,
    InternalServerError,
    LlamaStackClient,
    NotFoundError,
    NotImplementedByServerError,
    UnprocessableEntityError,
    stream_sse,
)
from tests.live import LiveServer

HELLO = [{"role": "user", "content": "hello there"}]


@pytest.fixture
def client(stack: LiveServer) -> LlamaStackClient:
    return LlamaStackClient(stack.base_url, max_retries=0)


def test_models_list_retrieve_register_unregister(client: LlamaStackClient) -> None:
    assert [m.identifier for m in client.models.list()] == ["echo", "embedder"]
    assert client.models.retrieve("embedder").model_type == "embedding"

    added = client.models.register(model_id="sdk-added", provider_model_id="echo-2", metadata={"k": 1})
    assert (added.identifier, added.provider_resource_id, added.provider_id) == ("sdk-added", "echo-2", "scripted")
    assert client.models.retrieve("sdk-added").metadata == {"k": 1}
    client.models.unregister("sdk-added")
    with pytest.raises(NotFoundError) as caught:
        client.models.retrieve("sdk-added")
    assert caught.value.status_code == 404 and caught.value.error_type == "not_found"
    assert "sdk-added" in caught.value.message


def test_chat_completion_whole_and_streamed(client: LlamaStackClient) -> None:
    messages = [SystemMessage(content="be brief"), UserMessage(content="hello there")]
    reply = client.inference.chat_completion(model_id="echo", messages=messages)
    assert reply.completion_message.content == "echo: hello there"
    assert reply.completion_message.stop_reason == "end_of_turn"

    with client.inference.chat_completion(model_id="echo", messages=HELLO, stream=True) as stream:
        chunks = list(stream)
    assert all(isinstance(c, ChatCompletionResponseStreamChunk) for c in chunks)
    assert [c.event.event_type for c in (chunks[0], chunks[-1])] == ["start", "complete"]
    assert "".join(str(c.event.delta) for c in chunks) == "echo: hello there"
    assert chunks[-1].event.stop_reason == "end_of_turn"


def test_sampling_params_reach_the_provider(client: LlamaStackClient) -> None:
    reply = client.inference.chat_completion(
        model_id="echo", messages=HELLO, sampling_params={"max_tokens": 2, "strategy": "greedy"}
    )
    assert reply.completion_message.content == "echo: hello"
    assert reply.completion_message.stop_reason == "out_of_tokens"


def test_completion_and_embeddings(client: LlamaStackClient) -> None:
    assert client.inference.completion(model_id="echo", content="plain text").content == "echo: plain text"
    streamed = list(client.inference.completion(model_id="echo", content="plain text", stream=True))
    assert "".join(c.delta for c in streamed) == "echo: plain text"
    assert streamed[-1].stop_reason == "end_of_turn"

    embeddings = client.inference.embeddings(model_id="embedder", contents=["abc", "hello"])
    assert embeddings.embeddings == [[3.0, 1.0], [5.0, 1.0]]


def test_errors_map_to_typed_exceptions(client: LlamaStackClient) -> None:
    with pytest.raises(NotFoundError, match="'missing' is not registered") as missing:
        client.inference.chat_completion(model_id="missing", messages=HELLO)
    assert missing.value.response is not None and missing.value.response.status_code == 404
    with pytest.raises(BadRequestError) as bad:
        client.models.register(model_id="x", provider_id="nope")
    assert bad.value.error_type == "invalid_request"
    with pytest.raises(UnprocessableEntityError, match="messages"):
        client.inference.chat_completion(model_id="echo", messages=[])
    with pytest.raises(NotImplementedByServerError, match="safety API is not served"):
        client.safety.run_shield(shield_id="llama-guard", messages=HELLO)
    with pytest.raises(InternalServerError) as upstream:
        client.inference.chat_completion(model_id="echo", messages=[{"role": "user", "content": "fail-now"}])
    assert upstream.value.status_code == 502 and upstream.value.error_type == "upstream_error"


def test_a_404_is_not_retried(stack: LiveServer) -> None:
    sent: list[httpx.Request] = []
    http = httpx.Client(event_hooks={"request": [sent.append]})
    client = LlamaStackClient(stack.base_url, http_client=http, max_retries=3, sleep=lambda s: None)
    with pytest.raises(NotFoundError):
        client.models.retrieve("nothing-here")
    assert len(sent) == 1


def test_a_stream_failing_midway_raises_after_its_first_chunks(client: LlamaStackClient) -> None:
    received: list[str] = []
    stream = client.inference.chat_completion(
        model_id="echo", messages=[{"role": "user", "content": "fail-midway please"}], stream=True
    )
    with pytest.raises(InternalServerError, match="died mid-stream") as caught:
        for chunk in stream:
            received.append(str(chunk.event.delta))
    assert "".join(received) == "echo: fail-midway"
    assert caught.value.in_stream and caught.value.error_type == "upstream_error"


def test_closing_a_stream_stops_the_generation(stack: LiveServer, client: LlamaStackClient) -> None:
    provider: Any = stack.stack.models.providers["scripted"]
    with client.inference.chat_completion(
        model_id="echo", messages=[{"role": "user", "content": "forever"}], stream=True
    ) as stream:
        for _ in range(5):
            next(stream)
    deadline = time.monotonic() + 2
    while provider.active_streams and time.monotonic() < deadline:
        time.sleep(0.01)
    assert provider.active_streams == 0


def test_provider_data_header_reaches_the_provider(stack: LiveServer) -> None:
    client = LlamaStackClient(stack.base_url, provider_data={"reply_prefix": "custom> "})
    reply = client.inference.chat_completion(model_id="echo", messages=HELLO)
    assert reply.completion_message.content == "custom> hello there"
    # with_options changes it for some calls, sharing the connection pool
    other = client.with_options(provider_data={"reply_prefix": "other> "})
    assert other.inference.completion(model_id="echo", content="x").content == "other> x"


def test_inspect(client: LlamaStackClient) -> None:
    assert client.inspect.health().status == "OK"
    providers = client.inspect.providers()
    assert [p.provider_type for p in providers["inference"]] == ["test::scripted"]
    routes = client.inspect.routes()
    assert any(r.route == "/alpha/inference/chat-completion" for r in routes["inference"])


def test_agents_sessions_turns_and_steps(client: LlamaStackClient) -> None:
    agent_id = client.agents.create(agent_config={"model": "echo", "instructions": "be nice"}).agent_id
    session_id = client.agents.session.create(agent_id=agent_id, session_name="s").session_id
    turn = client.agents.turn.create(agent_id=agent_id, session_id=session_id, messages=HELLO)
    assert turn.output_message.content == "echo: hello there"

    events = list(client.agents.turn.create(agent_id=agent_id, session_id=session_id, messages=HELLO, stream=True))
    kinds = [e.event.payload.event_type for e in events]
    assert kinds[:2] == ["turn_start", "step_start"] and kinds[-2:] == ["step_complete", "turn_complete"]

    fetched = client.agents.turn.retrieve(agent_id=agent_id, session_id=session_id, turn_id=turn.turn_id)
    assert fetched.output_message.content == "echo: hello there"
    step = turn.steps[0]
    got = client.agents.steps.retrieve(
        agent_id=agent_id, session_id=session_id, turn_id=turn.turn_id, step_id=step.step_id
    )
    assert got.step.step_id == step.step_id
    session = client.agents.session.retrieve(agent_id=agent_id, session_id=session_id, turn_ids=[turn.turn_id])
    assert [t.turn_id for t in session.turns] == [turn.turn_id]
    client.agents.session.delete(agent_id=agent_id, session_id=session_id)
    with pytest.raises(NotFoundError):
        client.agents.session.retrieve(agent_id=agent_id, session_id=session_id)
    client.agents.delete(agent_id=agent_id)


def test_async_client_mirrors_the_sync_one(stack: LiveServer) -> None:
    async def main() -> tuple[list[str], str, str]:
        async with AsyncLlamaStackClient(stack.base_url) as client:
            models = [m.identifier for m in await client.models.list()]
            reply = await client.inference.chat_completion(model_id="echo", messages=HELLO)
            stream = await client.inference.chat_completion(model_id="echo", messages=HELLO, stream=True)
            streamed = "".join([str(chunk.event.delta) async for chunk in stream])
            with pytest.raises(NotFoundError):
                await client.models.retrieve("missing")
            return models, str(reply.completion_message.content), streamed

    models, reply, streamed = asyncio.run(main())
    assert models == ["echo", "embedder"]
    assert reply == streamed == "echo: hello there"


def test_stream_sse_reads_the_openai_face_until_done(stack: LiveServer) -> None:
    body = {"model": "echo", "messages": HELLO, "stream": True}
    with httpx.stream("POST", f"{stack.base_url}/v1/chat/completions", json=body) as response:
        payloads = list(stream_sse(response, done_marker="[DONE]"))
    text = "".join(p["choices"][0]["delta"].get("content") or "" for p in payloads if p["choices"])
    assert text == "echo: hello there"


def test_importing_the_sdk_loads_neither_the_server_nor_a_web_framework() -> None:
    probe = (
        "import json, sys, llama_stack.client; "
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('fastapi', 'starlette', 'uvicorn', 'llama_stack_client') or m.startswith('llama_stack.') "
        "and m.split('.')[1] in ('server', 'distribution', 'providers', 'cli'))))"
    )
    loaded = json.loads(subprocess.run([sys.executable, "-c", probe], capture_output=True, check=True).stdout)
    assert loaded == []
