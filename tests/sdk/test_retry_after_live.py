"""The SDK against a real HTTP server that answers 429 and 503 with Retry-After, as a stack under a
quota or in an outage does: waits are real and measured where the server sees the requests. The
server stands in for the stack at its process boundary; it records when each request arrived."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from llama_stack.client import AsyncLlamaStackClient, InternalServerError, LlamaStackClient, RateLimitError

MODELS = [{"identifier": "m", "provider_resource_id": "m", "provider_id": "p"}]
REPLY = {"completion_message": {"role": "assistant", "content": "ok", "stop_reason": "end_of_turn"}}


class Script:
    """Answers each request with the next (status, headers) of a script; 200 when it runs out."""

    def __init__(self, *refusals: tuple[int, dict[str, str]]) -> None:
        self.refusals = list(refusals)
        self.arrivals: list[float] = []

    async def __call__(self, request: Request) -> Response:
        self.arrivals.append(time.monotonic())
        if self.refusals:
            status, headers = self.refusals.pop(0)
            body = {"error": {"type": "rate_limited" if status == 429 else "unavailable", "message": f"{status}"}}
            return JSONResponse(body, status_code=status, headers=headers)
        return JSONResponse(MODELS if request.method == "GET" else REPLY)

    def gaps(self) -> list[float]:
        return [later - earlier for earlier, later in zip(self.arrivals, self.arrivals[1:], strict=False)]


@contextmanager
def serving(script: Script) -> Iterator[str]:
    async def answer(request: Request) -> Response:
        return await script(request)

    app = Starlette(
        routes=[
            Route("/alpha/models/list", answer, methods=["GET"]),
            Route("/alpha/inference/chat-completion", answer, methods=["POST"]),
        ]
    )
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_the_client_waits_out_each_retry_after_before_asking_again() -> None:
    script = Script((429, {"retry-after": "1"}), (503, {"retry-after": "2", "x-should-retry": "true"}))
    with serving(script) as url, LlamaStackClient(url, max_retries=2, max_retry_after_s=5) as client:
        assert [m.identifier for m in client.models.list()] == ["m"]
    assert len(script.arrivals) == 3
    first, second = script.gaps()
    assert 1.0 <= first < 1.8 and 2.0 <= second < 2.8


def test_a_longer_retry_after_than_the_cap_fails_at_once_and_spends_one_request() -> None:
    script = Script((429, {"retry-after": "120", "x-should-retry": "true"}))
    with serving(script) as url, LlamaStackClient(url, max_retries=5, max_retry_after_s=30) as client:
        started = time.monotonic()
        with pytest.raises(RateLimitError):
            client.inference.chat_completion(model_id="m", messages=[{"role": "user", "content": "hi"}])
        assert time.monotonic() - started < 1.0
    assert len(script.arrivals) == 1


def test_a_marked_post_is_retried_after_the_wait_by_the_async_client() -> None:
    script = Script((503, {"retry-after": "1", "x-should-retry": "true"}))

    async def call(url: str) -> str:
        async with AsyncLlamaStackClient(url, max_retries=1) as client:
            reply = await client.inference.chat_completion(model_id="m", messages=[{"role": "user", "content": "hi"}])
            return str(reply.completion_message.content)

    with serving(script) as url:
        assert asyncio.run(call(url)) == "ok"
    assert len(script.arrivals) == 2 and script.gaps()[0] >= 1.0


def test_retries_end_with_the_servers_last_refusal() -> None:
    script = Script(*[(503, {"retry-after": "1", "x-should-retry": "true"})] * 3)
    with serving(script) as url, LlamaStackClient(url, max_retries=1) as client, pytest.raises(InternalServerError):
        client.models.list()
    assert len(script.arrivals) == 2 and script.gaps()[0] >= 1.0
