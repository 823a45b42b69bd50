"""The OpenAI-compatible adapter's own HTTP client (client.py, http1.py): SSE decoding, error
bodies, and HTTP/1.1 against a scripted raw server — keep-alive reuse, `Connection: close`,
close-delimited bodies, interim 1xx answers, a server that drops idle connections, flow control,
the connection bound, answers that are not HTTP — then environment proxies and uvloop."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpcore
import pytest

from llama_stack.apis.common import UserMessage
from llama_stack.apis.errors import InvalidRequest, UpstreamError, UpstreamTimeout
from llama_stack.apis.inference import ChatCompletionRequest
from llama_stack.distribution.provider import Deps
from llama_stack.distribution.request_context import reset_provider_data, set_provider_data
from llama_stack.providers.inference.openai_compat import SPECS, OpenAICompatConfig, http1
from llama_stack.providers.inference.openai_compat.client import SSEDecoder, UpstreamHTTP, environment_proxy
from llama_stack.providers.inference.openai_compat.errors import StatusError, StreamError, Upstream, translate
from tests.fakes.openai_server import FakeOpenAIServer

OK = b'{"ok": true}'
UPSTREAM = Upstream("remote::vllm", "http://upstream/v1", 1.0)


def answer(body: bytes = OK, *headers: str, status: str = "200 OK") -> bytes:
    head = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


Script = Callable[[int], bytes | None]  # request number -> what to write (None: close at once)


class RawServer:
    """Answers each request with what `script` says for it; counts connections and requests.
    The connection is closed after answers that ask for `Connection: close`, after the requests
    numbered in `close_after`, and at once where the script says None."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.close_after: set[int] = set()
        self.connections = 0
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None
        self.handlers: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> RawServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        if self.handlers:  # the clients have closed their connections: let the handlers see it
            await asyncio.wait(self.handlers, timeout=2)

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/v1"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self.handlers.add(task)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.lower().split(b"\r\n")
                length = next((int(line[15:]) for line in lines if line.startswith(b"content-length:")), 0)
                self.requests.append(head + await reader.readexactly(length))
                reply = self.script(len(self.requests) - 1)
                if reply is None:
                    break
                writer.write(reply)
                await writer.drain()
                if b"connection: close" in reply.lower().split(b"\r\n\r\n")[0]:
                    break
                if len(self.requests) - 1 in self.close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def client(url: str, timeout_s: float = 2.0, max_connections: int = 4) -> UpstreamHTTP:
    return UpstreamHTTP(url, timeout_s, max_connections)


# --- SSE and error bodies -------------------------------------------------------------------------


def test_sse_events_split_anywhere_with_crlf_comments_and_multiline_data() -> None:
    body = (
        b': a comment\r\nevent: message\r\ndata: {"n": 1}\r\n\r\n'
        b'data: {"n":\ndata:  2}\n\nid: 7\nretry: 10\ndata: {"n": 3}\n\n'
        b'data: [DONE]\n\ndata: {"n": 4}\n\n'
    )
    for size in (1, 2, 5, 7, len(body)):
        decoder = SSEDecoder()
        events = [e for start in range(0, len(body), size) for e in decoder.feed(body[start : start + size])]
        assert events == [{"n": 1}, {"n": 2}, {"n": 3}], size
        assert decoder.done and decoder.close() == []


def test_sse_last_event_without_blank_line_and_error_events() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b'data: {"n": 1}') == []
    assert decoder.close() == [{"n": 1}]
    with pytest.raises(StreamError, match="overloaded"):
        SSEDecoder().feed(b'data: {"error": {"message": "overloaded"}}\n\n')
    with pytest.raises(ValueError):
        SSEDecoder().feed(b"data: {not json\n\n")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"error": {"message": "bad temperature", "type": "invalid_request_error"}}', "bad temperature"),
        (b'{"error": "Input validation error: too long", "error_type": "validation"}', "Input validation error"),
        (b'{"message": "flat"}', "flat"),
        (b"<html>Bad Gateway</html>", "<html>Bad Gateway</html>"),
        (b"", "Bad Gateway"),
    ],
)
def test_status_error_messages_take_the_upstreams_words(body: bytes, message: str) -> None:
    assert message in StatusError(502, body, {}, "Bad Gateway").message


def test_redirects_and_mid_stream_drops_are_upstream_errors() -> None:
    redirect = translate(StatusError(301, b"", {"location": "https://elsewhere/v1"}), UPSTREAM)
    assert isinstance(redirect, UpstreamError) and "https://elsewhere/v1" in redirect.message
    dropped = translate(httpcore.RemoteProtocolError("peer closed"), UPSTREAM, streaming=True)
    assert isinstance(dropped, UpstreamError) and "mid-stream" in dropped.message


# --- HTTP/1.1 ---------------------------------------------------------------------------------------


async def test_keep_alive_reuses_one_connection_and_sends_one_request_each() -> None:
    async with RawServer(lambda n: answer()) as server:
        http = client(server.url)
        for _ in range(3):
            assert await http.json("POST", "/chat/completions", "k1", b'{"a": 1}') == {"ok": True}
        assert await http.json("GET", "/models", "k2") == {"ok": True}
        await http.aclose()
    assert server.connections == 1 and len(server.requests) == 4
    post, get = server.requests[0], server.requests[3]
    assert post.startswith(b"POST /v1/chat/completions HTTP/1.1\r\n") and post.endswith(b'\r\n\r\n{"a": 1}')
    assert b"Authorization: Bearer k1\r\n" in post and b"Content-Length: 8\r\n" in post
    assert get.startswith(b"GET /v1/models HTTP/1.1\r\n") and b"Content-Length" not in get


async def test_connection_close_and_close_delimited_bodies() -> None:
    def script(n: int) -> bytes:
        if n == 0:
            return answer(OK, "Connection: close")
        return b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + OK  # no length: ends with the connection

    async with RawServer(script) as server:
        http = client(server.url)
        assert await http.json("POST", "/chat/completions", "k", b"{}") == {"ok": True}
        assert await http.json("POST", "/chat/completions", "k", b"{}") == {"ok": True}
        await http.aclose()
    assert server.connections == 2


async def test_connections_the_server_drops_are_not_reused() -> None:
    async with RawServer(lambda n: None if n == 2 else answer()) as server:
        server.close_after = {0}  # as a server does when its keep-alive timeout passes
        http = client(server.url)
        assert await http.json("POST", "/chat/completions", "k", b"{}") == {"ok": True}
        await asyncio.sleep(0.05)
        assert await http.json("POST", "/chat/completions", "k", b"{}") == {"ok": True}
        assert server.connections == 2
        with pytest.raises(httpcore.RemoteProtocolError) as caught:  # closed without answering
            await http.json("POST", "/chat/completions", "k", b"{}")
        assert translate(caught.value, UPSTREAM).message.startswith("cannot reach remote::vllm")
        assert await http.json("POST", "/chat/completions", "k", b"{}") == {"ok": True}
        await http.aclose()
    assert server.connections == 3


async def test_interim_1xx_answers_are_skipped_and_errors_keep_their_headers() -> None:
    def script(n: int) -> bytes:
        if n == 0:
            return b"HTTP/1.1 100 Continue\r\n\r\n" + answer()
        return answer(b'{"error": {"message": "slow down"}}', "Retry-After: 7", status="429 Too Many Requests")

    async with RawServer(script) as server:
        http = client(server.url)
        assert await http.json("POST", "/chat/completions", "k", b"{}") == {"ok": True}
        with pytest.raises(StatusError) as caught:
            await http.json("POST", "/chat/completions", "k", b"{}")
        await http.aclose()
    assert (caught.value.status, caught.value.headers["retry-after"], caught.value.message) == (429, "7", "slow down")
    assert caught.value.reason == "Too Many Requests" and server.connections == 1  # an error body is read out


async def test_a_big_body_read_slowly_pauses_reading_and_arrives_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http1, "HIGH_WATER", 1 << 16)
    monkeypatch.setattr(http1, "LOW_WATER", 1 << 12)
    payload = json.dumps({"data": "x" * (3 << 20)}).encode()
    async with RawServer(lambda n: answer(payload)) as server:
        http = client(server.url)
        response = await http.send("POST", "/embeddings", "k", b"{}")
        connection = response._stream._connection
        received, paused = bytearray(), False
        async for chunk in response.aiter_stream():
            received += chunk
            await asyncio.sleep(0.001)  # a slow reader: meanwhile more arrives, and reading pauses
            paused = paused or connection._paused
        await response.aclose()
        assert bytes(received) == payload and paused
        assert await http.json("POST", "/embeddings", "k", b"{}") == json.loads(payload)  # reusable after
        await http.aclose()
    assert server.connections == 1


async def test_the_connection_bound_holds_and_waiting_too_long_is_a_timeout() -> None:
    async with RawServer(lambda n: answer()) as server:
        http = client(server.url, timeout_s=0.2, max_connections=1)
        results = await asyncio.gather(*(http.json("POST", "/chat/completions", "k", b"{}") for _ in range(5)))
        assert results == [{"ok": True}] * 5 and server.connections == 1
        held = await http.send("POST", "/chat/completions", "k", b"{}")  # its body unread: still in use
        with pytest.raises(httpcore.PoolTimeout) as caught:
            await http.json("POST", "/chat/completions", "k", b"{}")
        assert isinstance(translate(caught.value, UPSTREAM), UpstreamTimeout)
        await held.aclose()
        assert await http.json("POST", "/chat/completions", "k", b"{}") == {"ok": True}
        await http.aclose()


async def test_an_answer_that_is_not_http_is_an_upstream_error() -> None:
    async with RawServer(lambda n: b"SSH-2.0-OpenSSH_9.6\r\n\r\n") as server:
        http = client(server.url)
        with pytest.raises(httpcore.RemoteProtocolError) as caught:
            await http.json("POST", "/chat/completions", "k", b"{}")
        await http.aclose()
    assert "not valid HTTP" in translate(caught.value, UPSTREAM).message


async def test_a_key_that_cannot_be_a_header_is_refused_before_sending() -> None:
    async with RawServer(lambda n: answer()) as server:
        config = OpenAICompatConfig(url=server.url, verify_models=False)
        provider = await SPECS["remote::openai"].factory(config, Deps())
        request = ChatCompletionRequest(model_id="m", messages=[UserMessage(content="hi")])
        token = set_provider_data({"openai_api_key": "sk-1\r\nX-Injected: yes"})
        try:
            with pytest.raises(InvalidRequest, match="not printable ASCII"):
                await provider.chat_completion(request)
        finally:
            reset_provider_data(token)
        await provider.shutdown()
    assert server.requests == []


# --- proxies and uvloop ---------------------------------------------------------------------------


def test_environment_proxy_honours_no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "internal.example,127.0.0.1")
    assert environment_proxy("https://api.together.xyz/v1") is None
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy:3128")
    assert environment_proxy("https://api.together.xyz/v1") == "http://proxy:3128"
    assert environment_proxy("https://internal.example/v1") is None
    assert environment_proxy("http://api.together.xyz/v1") is None  # only HTTPS_PROXY is set


@pytest.fixture
async def relay() -> AsyncIterator[dict[str, Any]]:
    """A forward HTTP proxy that relays each connection to the host its first request names."""
    seen: dict[str, Any] = {"requests": []}

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        seen["requests"].append(head.split(b"\r\n")[0].decode())
        authority = head.split(b" ")[1].split(b"/")[2].decode()
        host, port = authority.rsplit(":", 1)
        upstream_reader, upstream_writer = await asyncio.open_connection(host, int(port))
        upstream_writer.write(head)
        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    seen["url"] = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    yield seen
    server.close()


async def test_calls_go_through_the_environments_proxy(relay: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("http_proxy", relay["url"])
    async with RawServer(lambda n: answer()) as server:
        http = client(server.url)
        assert await http.json("POST", "/chat/completions", "k", b"{}") == {"ok": True}
        await http.aclose()
        assert relay["requests"] == [f"POST {server.url}/chat/completions HTTP/1.1"]
    assert b"Authorization: Bearer k" in server.requests[0]


def test_the_provider_runs_on_uvloop() -> None:
    uvloop = pytest.importorskip("uvloop")

    async def chat(url: str) -> str:
        provider = await SPECS["remote::vllm"].factory(OpenAICompatConfig(url=url), Deps())
        request = ChatCompletionRequest(model_id="Llama3.2-3B-Instruct", messages=[UserMessage(content="hi")])
        try:
            whole = await provider.chat_completion(request)
            streamed = [c async for c in provider.chat_completion_stream(request.model_copy(update={"stream": True}))]
        finally:
            await provider.shutdown()
        assert streamed[-1].event.stop_reason == whole.completion_message.stop_reason
        return str(whole.completion_message.content)

    with FakeOpenAIServer() as fake, ThreadPoolExecutor(1) as thread:  # its own loop, off pytest's
        assert thread.submit(uvloop.run, chat(fake.base_url)).result().startswith("This is the fake reply")
