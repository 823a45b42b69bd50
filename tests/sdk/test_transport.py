"""Edge cases through httpx.MockTransport: retries and their waits, Retry-After, what is never
retried, broken streams, timeouts and configuration from the environment."""

from __future__ import annotations

import asyncio
import email.utils
import json
from collections.abc import Callable, Iterator

import httpx
import pytest

from llama_stack.apis.common import UserMessage
from llama_stack.apis.memory import MemoryBankDocument
from llama_stack.client import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AsyncLlamaStackClient,
    InternalServerError,
    LlamaStackClient,
    NotFoundError,
    PayloadTooLargeError,
    RateLimitError,
    stream_sse,
)

Handler = Callable[[httpx.Request], httpx.Response]
MODELS = [{"identifier": "m", "provider_resource_id": "m", "provider_id": "p"}]
HELLO = [{"role": "user", "content": "hi"}]
NOW = 1_700_000_000.0


def error(status: int, kind: str, message: str, **headers: str) -> httpx.Response:
    return httpx.Response(status, json={"error": {"type": kind, "message": message}}, headers=headers)


class Server:
    """Answers requests from a script, one response (or exception) per request, and records them."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def make_client(server: Handler, max_retries: int = 2, timeout: float = 60.0) -> tuple[LlamaStackClient, list[float]]:
    """A client over `server` whose waits between retries are recorded instead of slept."""
    sleeps: list[float] = []
    http = httpx.Client(transport=httpx.MockTransport(server))
    client = LlamaStackClient(
        "http://stack",
        http_client=http,
        max_retries=max_retries,
        timeout=timeout,
        sleep=sleeps.append,
        clock=lambda: NOW,
    )
    return client, sleeps


def test_a_get_is_retried_with_exponential_backoff_and_jitter() -> None:
    server = Server(
        error(503, "unavailable", "busy"), error(502, "upstream_error", "x"), httpx.Response(200, json=MODELS)
    )
    client, sleeps = make_client(server)
    assert [m.identifier for m in client.models.list()] == ["m"]
    assert len(server.requests) == 3
    # 0.5s then 1s, each shortened by up to 25% of jitter
    assert 0.375 <= sleeps[0] <= 0.5 and 0.75 <= sleeps[1] <= 1.0


def test_jitter_spreads_the_waits_of_clients_that_failed_together() -> None:
    waits = set()
    for _ in range(5):
        client, sleeps = make_client(Server(error(503, "x", "busy"), httpx.Response(200, json=MODELS)))
        client.models.list()
        waits.add(sleeps[0])
    assert len(waits) > 1


def test_retry_after_in_seconds_is_honoured() -> None:
    server = Server(error(429, "rate_limited", "slow down", **{"retry-after": "3"}), httpx.Response(200, json=MODELS))
    client, sleeps = make_client(server)
    client.models.list()
    assert sleeps == [3.0]


def test_retry_after_as_an_http_date_is_measured_on_the_clock() -> None:
    later = email.utils.formatdate(NOW + 7, usegmt=True)
    server = Server(error(503, "busy", "later", **{"retry-after": later}), httpx.Response(200, json=MODELS))
    client, sleeps = make_client(server)
    client.models.list()
    assert sleeps == [7.0]


def test_retries_stop_at_max_retries_with_the_last_error() -> None:
    server = Server(*[error(429, "rate_limited", f"attempt {i}", **{"retry-after": "1"}) for i in range(4)])
    client, sleeps = make_client(server, max_retries=3)
    with pytest.raises(RateLimitError, match="attempt 3"):
        client.models.list()
    assert sleeps == [1.0, 1.0, 1.0] and len(server.requests) == 4


def test_a_retry_after_beyond_the_cap_is_raised_at_once_instead_of_retried_early() -> None:
    # Retrying before the server's time would be refused again and spend the quota once more.
    server = Server(error(429, "rate_limited", "come back in an hour", **{"retry-after": "3600"}))
    client, sleeps = make_client(server, max_retries=5)
    with pytest.raises(RateLimitError, match="come back in an hour"):
        client.models.list()
    assert len(server.requests) == 1 and sleeps == []


def test_the_retry_after_cap_is_configurable_and_kept_by_with_options() -> None:
    later = email.utils.formatdate(NOW + 600, usegmt=True)
    server = Server(
        error(503, "unavailable", "maintenance", **{"retry-after": "3600"}),
        error(503, "unavailable", "maintenance", **{"retry-after": later}),
        httpx.Response(200, json=MODELS),
    )
    sleeps: list[float] = []
    http = httpx.Client(transport=httpx.MockTransport(server))
    patient = LlamaStackClient(
        "http://stack", http_client=http, max_retry_after_s=7200, sleep=sleeps.append, clock=lambda: NOW
    )
    assert [m.identifier for m in patient.with_options(max_retries=3).models.list()] == ["m"]
    assert sleeps == [3600.0, 600.0]


def test_retry_after_in_milliseconds_negative_and_unreadable_values() -> None:
    server = Server(
        error(429, "rate_limited", "x", **{"retry-after-ms": "1500", "retry-after": "2"}),
        error(429, "rate_limited", "x", **{"retry-after": "-4"}),
        error(429, "rate_limited", "x", **{"retry-after": "nan"}),
        httpx.Response(200, json=MODELS),
    )
    client, sleeps = make_client(server, max_retries=3)
    client.models.list()
    assert sleeps[:2] == [1.5, 0.0]
    assert 1.5 <= sleeps[2] <= 2.0  # unreadable: the usual backoff before a third retry


def test_client_errors_are_never_retried() -> None:
    for status in (400, 404, 413, 422):
        server = Server(error(status, "x", "no"), httpx.Response(200, json=MODELS))
        client, sleeps = make_client(server)
        with pytest.raises(Exception) as caught:
            client.models.list()
        assert getattr(caught.value, "status_code", None) == status
        assert len(server.requests) == 1 and sleeps == []


def test_a_post_is_retried_only_when_the_server_says_so() -> None:
    reply = {"completion_message": {"role": "assistant", "content": "ok", "stop_reason": "end_of_turn"}}
    unmarked = Server(error(500, "internal_error", "boom"), httpx.Response(200, json=reply))
    client, _ = make_client(unmarked)
    with pytest.raises(InternalServerError, match="boom"):
        client.inference.chat_completion(model_id="m", messages=HELLO)
    assert len(unmarked.requests) == 1

    marked = Server(
        error(502, "upstream_error", "flaky", **{"x-should-retry": "true"}), httpx.Response(200, json=reply)
    )
    client, sleeps = make_client(marked)
    assert client.inference.chat_completion(model_id="m", messages=HELLO).completion_message.content == "ok"
    assert len(marked.requests) == 2 and len(sleeps) == 1


def test_the_server_can_forbid_retrying_a_get() -> None:
    server = Server(error(503, "x", "do not retry", **{"x-should-retry": "false"}))
    client, _ = make_client(server)
    with pytest.raises(InternalServerError, match="do not retry"):
        client.models.list()
    assert len(server.requests) == 1


def test_a_connection_never_opened_is_retried_even_for_a_post() -> None:
    reply = {"embeddings": [[1.0]]}
    server = Server(httpx.ConnectError("refused"), httpx.Response(200, json=reply))
    client, sleeps = make_client(server)
    assert client.inference.embeddings(model_id="e", contents=["x"]).embeddings == [[1.0]]
    assert len(sleeps) == 1


def test_a_post_that_timed_out_is_not_repeated() -> None:
    server = Server(httpx.ReadTimeout("slow"), httpx.Response(200, json={"embeddings": []}))
    client, _ = make_client(server)
    with pytest.raises(APITimeoutError):
        client.inference.embeddings(model_id="e", contents=["x"])
    assert len(server.requests) == 1


def test_timeouts_are_sent_with_each_request_and_raise_typed_errors() -> None:
    server = Server(httpx.ReadTimeout("slow"), httpx.ReadTimeout("slow"))
    client, sleeps = make_client(server, timeout=1.5, max_retries=1)
    with pytest.raises(APITimeoutError, match="timed out"):
        client.models.list()
    assert server.requests[0].extensions["timeout"]["read"] == 1.5
    assert len(sleeps) == 1  # a GET that timed out was tried again, once

    unreachable = Server(httpx.ConnectError("refused"))
    client, _ = make_client(unreachable, max_retries=0)
    with pytest.raises(APIConnectionError, match="cannot reach http://stack"):
        client.models.list()


def sse(*payloads: object) -> bytes:
    return b"".join(b"data: " + json.dumps(p).encode() + b"\n\n" for p in payloads)


def chunk(delta: str) -> dict[str, object]:
    return {"event": {"event_type": "progress", "delta": delta}}


def test_a_stream_that_fails_midway_raises_and_is_not_retried() -> None:
    body = sse(chunk("a"), chunk("b"), {"error": {"type": "upstream_timeout", "message": "backend stalled"}})
    server = Server(httpx.Response(200, content=body, headers={"content-type": "text/event-stream"}))
    client, _ = make_client(server, max_retries=5)
    seen = []
    with pytest.raises(InternalServerError, match="backend stalled") as caught:
        for item in client.inference.chat_completion(model_id="m", messages=HELLO, stream=True):
            seen.append(item.event.delta)
    assert seen == ["a", "b"] and caught.value.status_code == 504 and caught.value.in_stream
    assert len(server.requests) == 1


def test_a_stream_refused_before_its_first_byte_is_retried_when_marked() -> None:
    ok = httpx.Response(200, content=sse(chunk("x")), headers={"content-type": "text/event-stream"})
    server = Server(error(503, "x", "warming up", **{"x-should-retry": "true", "retry-after": "2"}), ok)
    client, sleeps = make_client(server)
    chunks = client.inference.chat_completion(model_id="m", messages=HELLO, stream=True)
    assert [c.event.delta for c in chunks] == ["x"]
    assert sleeps == [2.0]
    assert server.requests[1].headers["accept"] == "text/event-stream"


def test_a_broken_connection_mid_stream_is_a_connection_error() -> None:
    class Broken(httpx.SyncByteStream):
        def __iter__(self) -> Iterator[bytes]:
            yield sse(chunk("a"))
            raise httpx.RemoteProtocolError("peer closed connection")

    client, _ = make_client(Server(httpx.Response(200, stream=Broken())))
    stream = client.inference.chat_completion(model_id="m", messages=HELLO, stream=True)
    assert next(stream).event.delta == "a"
    with pytest.raises(APIConnectionError, match="broke off"):
        next(stream)


def test_stream_sse_handles_both_faces_and_error_events() -> None:
    openai = b'data: {"n": 1}\n\ndata: {"n": 2}\n\ndata: [DONE]\n\ndata: {"n": 3}\n\n'
    assert list(stream_sse(httpx.Response(200, content=openai), done_marker="[DONE]")) == [{"n": 1}, {"n": 2}]
    # multi-line data, a comment, and a last event without its blank line
    alpha = b': keep-alive\n\ndata: {"a":\ndata: 1}\n\ndata: {"b": 2}'
    assert list(stream_sse(httpx.Response(200, content=alpha))) == [{"a": 1}, {"b": 2}]
    named = b'event: error\ndata: {"type": "not_found", "message": "gone"}\n\n'
    with pytest.raises(NotFoundError, match="gone"):
        list(stream_sse(httpx.Response(200, content=named)))
    with pytest.raises(APIError, match="not JSON"):
        list(stream_sse(httpx.Response(200, content=b"data: [DONE]\n\n")))


def test_base_url_api_key_and_provider_data_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLAMA_STACK_BASE_URL", "http://stack.example:8321/")
    monkeypatch.setenv("LLAMA_STACK_API_KEY", "secret")
    server = Server(httpx.Response(200, json=MODELS))
    client = LlamaStackClient(
        http_client=httpx.Client(transport=httpx.MockTransport(server)), provider_data={"together_api_key": "k"}
    )
    client.models.list()
    request = server.requests[0]
    assert str(request.url) == "http://stack.example:8321/alpha/models/list"
    assert request.headers["authorization"] == "Bearer secret"
    assert json.loads(request.headers["x-llamastack-providerdata"]) == {"together_api_key": "k"}

    monkeypatch.delenv("LLAMA_STACK_BASE_URL")
    monkeypatch.delenv("LLAMA_STACK_API_KEY")
    default = LlamaStackClient()
    assert default.base_url == "http://localhost:5000" and "Authorization" not in default.headers


def test_query_and_body_parameters_follow_the_official_client() -> None:
    session = {"session_id": "s", "session_name": "n", "turns": [], "started_at": "2025-01-01T00:00:00Z"}
    chunks = {"chunks": [{"content": "c", "token_count": 1, "document_id": "d"}], "scores": [0.5]}
    server = Server(
        httpx.Response(200, json=session),
        httpx.Response(200, content=b"null"),
        httpx.Response(200, content=b"null"),
        httpx.Response(200, json=chunks),
        httpx.Response(200, json={"violation": None}),
    )
    client, _ = make_client(server)
    client.agents.session.retrieve(agent_id="a", session_id="s", turn_ids=["t1"])
    client.memory_banks.unregister("bank")
    client.memory.insert(bank_id="bank", documents=[MemoryBankDocument(document_id="d", content="text")])
    assert client.memory.query(bank_id="bank", query="what", params={"max_chunks": 3}).scores == [0.5]
    assert client.safety.run_shield(shield_id="guard", messages=[UserMessage(content="hi")]).violation is None
    get, unregister, insert, query, shield = server.requests
    assert (get.method, get.url.path) == ("POST", "/alpha/agents/session/get")
    assert dict(get.url.params) == {"agent_id": "a", "session_id": "s"}
    assert json.loads(get.content) == {"turn_ids": ["t1"]}
    assert json.loads(unregister.content) == {"memory_bank_id": "bank"}
    assert json.loads(insert.content) == {
        "bank_id": "bank",
        "documents": [{"document_id": "d", "content": "text", "metadata": {}}],
    }
    assert json.loads(query.content) == {"bank_id": "bank", "query": "what", "params": {"max_chunks": 3}}
    assert (shield.url.path, json.loads(shield.content)) == (
        "/alpha/safety/run-shield",
        {"shield_id": "guard", "messages": [{"role": "user", "content": "hi"}]},
    )


def test_the_async_client_retries_through_its_own_sleep() -> None:
    server = Server(error(413, "payload_too_large", "big"), error(503, "x", "busy"), httpx.Response(200, json=MODELS))
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    async def main() -> None:
        http = httpx.AsyncClient(transport=httpx.MockTransport(server))
        client = AsyncLlamaStackClient("http://stack", http_client=http, sleep=sleep)
        with pytest.raises(PayloadTooLargeError, match="big"):
            await client.models.list()
        assert [m.identifier for m in await client.models.list()] == ["m"]

    asyncio.run(main())
    assert len(server.requests) == 3 and len(sleeps) == 1 and 0.375 <= sleeps[0] <= 0.5
