"""A real server over real HTTP: client disconnects and the official llama-stack-client."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from llama_stack_client import BadRequestError, LlamaStackClient, NotFoundError

from tests.live import LiveServer, live_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    config: dict[str, Any] = {
        "version": 2,
        "image_name": "live",
        "providers": {
            "inference": [
                {"provider_id": "scripted", "provider_type": "test::scripted", "config": {"token_delay_s": 0.005}}
            ]
        },
        "metadata_store": {"type": "sqlite", "db_path": str(tmp_path_factory.mktemp("live") / "r.db")},
        "models": [{"model_id": "echo"}, {"model_id": "embedder", "model_type": "embedding"}],
    }
    with live_server(config) as live:
        yield live


def wait_until(condition: Any, timeout_s: float) -> float:
    started = time.perf_counter()
    while not condition():
        if time.perf_counter() - started > timeout_s:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)
    return time.perf_counter() - started


def test_client_disconnect_stops_the_generation(server: LiveServer) -> None:
    provider = server.stack.models.providers["scripted"]
    body = {"model_id": "echo", "messages": [{"role": "user", "content": "forever"}], "stream": True}
    with (
        httpx.Client(base_url=server.base_url, timeout=10) as http,
        http.stream("POST", "/alpha/inference/chat-completion", json=body) as response,
    ):
        frames = response.iter_lines()
        received = [line for line, _ in zip(frames, range(10), strict=False) if line]
        assert len(received) >= 3
        assert provider.active_streams == 1
    # Leaving the block closed the connection mid-stream.
    freed_after = wait_until(lambda: provider.active_streams == 0, timeout_s=1.0)
    assert provider.cancelled_streams >= 1
    assert freed_after < 1.0


def test_official_client_chat_and_completion(server: LiveServer) -> None:
    client = LlamaStackClient(base_url=server.base_url)
    assert [m.identifier for m in client.models.list()] == ["echo", "embedder"]

    response = client.inference.chat_completion(model_id="echo", messages=[{"role": "user", "content": "hello client"}])
    assert response.completion_message.content == "echo: hello client"
    assert response.completion_message.stop_reason == "end_of_turn"

    chunks = list(
        client.inference.chat_completion(
            model_id="echo", messages=[{"role": "user", "content": "stream me"}], stream=True
        )
    )
    assert chunks[0].event.event_type == "start" and chunks[-1].event.event_type == "complete"
    assert "".join(c.event.delta for c in chunks) == "echo: stream me"

    completion = client.inference.completion(model_id="echo", content="plain")
    assert completion.content == "echo: plain"
    streamed = list(client.inference.completion(model_id="echo", content="plain", stream=True))
    assert "".join(c.delta for c in streamed) == "echo: plain"

    embeddings = client.inference.embeddings(model_id="embedder", contents=["abc"])
    assert embeddings.embeddings == [[3.0, 1.0]]


def test_official_client_sees_typed_errors_without_retrying(server: LiveServer) -> None:
    requests: list[str] = []
    http = httpx.Client(event_hooks={"request": [lambda r: requests.append(str(r.url))]})
    client = LlamaStackClient(base_url=server.base_url, http_client=http, max_retries=2)
    with pytest.raises(NotFoundError, match="not registered"):
        client.inference.chat_completion(model_id="missing", messages=[{"role": "user", "content": "x"}])
    assert len(requests) == 1, "a 404 must not be retried"
    with pytest.raises(BadRequestError):
        client.models.register(model_id="x", provider_id="nope")


def test_official_client_registers_models(server: LiveServer, tmp_path: Path) -> None:
    client = LlamaStackClient(base_url=server.base_url)
    model = client.models.register(model_id="added", provider_model_id="echo-2")
    assert model.identifier == "added" and model.provider_resource_id == "echo-2"
    assert client.models.retrieve(identifier="added").provider_id == "scripted"
    client.models.unregister(model_id="added")
    with pytest.raises(NotFoundError):
        client.models.retrieve(identifier="added")
    assert client.inspect.health().status == "OK"
    assert "inference" in client.providers.list()
    assert "inference" in client.routes.list()
