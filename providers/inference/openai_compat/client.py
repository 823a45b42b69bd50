"""A lean HTTP client for one OpenAI-compatible upstream, in place of the openai SDK.

Why not the SDK, nor httpx.AsyncClient (measured in the gateway, benchmarks/bench_gateway.py):
  * the SDK spent ~0.8 ms of CPU per call transforming the params (a recursive TypedDict walk),
    building pydantic models of the answer and its request objects;
  * httpx.AsyncClient adds auth/cookie/redirect/event-hook machinery and an INFO log line per
    request, and its connection pool (httpcore's) is quadratic in the number of connections: at
    32 concurrent calls it cost ~1.5 ms of CPU per call, 3x a single call.
So calls go over a Transport, by default http1.py's pooled connections (PooledTransport: the
request's head is rendered once per path, head and body leave in one write); bodies are
serialised once and answers parsed once, with pydantic-core's JSON codec. Tests may plug another Transport.

The environment's CA bundle (SSL_CERT_FILE, SSL_CERT_DIR) is honoured as httpx honours it; where
the environment names a proxy for the upstream (HTTPS_PROXY..., minus NO_PROXY), calls go through
httpcore's proxy pool instead. Errors are raised as they come: httpcore's exceptions, and
errors.StatusError for an answer whose status is not 2xx; inference.py translates them.
"""

from __future__ import annotations

import urllib.parse
import urllib.request
from typing import Any, Protocol

import httpcore
import httpx

from llama_stack.apis.common import load_json

from .errors import StatusError, StreamError
from .http1 import KEEPALIVE_EXPIRY_S, Answer, Pool

JSON = b"application/json"
USER_AGENT = b"llamastack-lite"


def environment_proxy(url: str) -> str | None:
    """The proxy the environment names for `url` (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY, NO_PROXY)."""
    parts = urllib.parse.urlsplit(url)
    proxies = urllib.request.getproxies()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    return proxy


class Transport(Protocol):
    """How a request reaches the upstream: the pooled HTTP/1.1 connections (the fast path), the
    environment's proxy, or whatever a test plugs in (HttpxTransport over httpx.MockTransport)."""

    async def send(self, method: str, path: str, api_key: str, body: bytes | None) -> Answer:
        """The answer with its body unread; `path` is below the base URL."""
        ...

    async def aclose(self) -> None: ...


class PooledTransport:
    """http1.py's keep-alive connections; the request's head is rendered once per path (only
    Authorization and Content-Length change per call), and head and body leave in one write."""

    def __init__(self, parts: urllib.parse.SplitResult, pool: Pool) -> None:
        self._prefix = parts.path
        self._host = parts.netloc.encode()
        self._pool = pool
        self._heads: dict[tuple[str, str], bytes] = {}

    def _head(self, method: str, path: str, json_body: bool) -> bytes:
        """The request line and fixed headers, ending where Authorization comes."""
        head = self._heads.get((method, path))
        if head is None:
            lines = [f"{method} {self._prefix}{path} HTTP/1.1".encode(), b"Host: " + self._host]
            lines += [b"Accept: application/json", b"User-Agent: " + USER_AGENT]
            if json_body:
                lines.append(b"Content-Type: application/json")
            head = self._heads[(method, path)] = b"\r\n".join(lines) + b"\r\n"
        return head

    async def send(self, method: str, path: str, api_key: str, body: bytes | None) -> Answer:
        head = self._head(method, path, body is not None)
        auth = b"Authorization: Bearer " + api_key.encode() + b"\r\n"
        if body is None:
            data = head + auth + b"\r\n"
        else:
            data = b"".join((head, auth, b"Content-Length: ", str(len(body)).encode(), b"\r\n\r\n", body))
        return await self._pool.request(data)

    async def aclose(self) -> None:
        await self._pool.aclose()


class ProxyTransport:
    """httpcore's proxy pool, where the environment names a proxy for the upstream."""

    def __init__(self, base_url: str, timeout_s: float, engine: httpcore.AsyncHTTPProxy) -> None:
        self.base_url = base_url
        self.timeout_s = timeout_s
        self._host = urllib.parse.urlsplit(base_url).netloc.encode()
        self._engine = engine

    async def send(self, method: str, path: str, api_key: str, body: bytes | None) -> Answer:
        headers = [(b"Host", self._host), (b"Accept", JSON), (b"User-Agent", USER_AGENT)]
        headers.append((b"Authorization", f"Bearer {api_key}".encode()))
        if body is not None:
            headers += [(b"Content-Type", JSON), (b"Content-Length", str(len(body)).encode())]
        timeout = self.timeout_s
        extensions = {"timeout": {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout}}
        url = (self.base_url + path).encode()
        request = httpcore.Request(method, url, headers=headers, content=body, extensions=extensions)
        response = await self._engine.handle_async_request(request)
        reason = response.extensions.get("reason_phrase", b"")
        return Answer(response.status, reason, response.headers, response.aiter_stream(), response.aclose)

    async def aclose(self) -> None:
        await self._engine.aclose()


class HttpxTransport:
    """An httpx transport (httpx.MockTransport, httpx.ASGITransport) as the upstream: for tests
    that answer the provider's calls in-process."""

    def __init__(self, base_url: str, transport: httpx.AsyncBaseTransport) -> None:
        self.base_url = base_url
        self._transport = transport

    async def send(self, method: str, path: str, api_key: str, body: bytes | None) -> Answer:
        headers = {"Accept": "application/json", "Authorization": f"Bearer {api_key}"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        request = httpx.Request(method, self.base_url + path, headers=headers, content=body)
        response = await self._transport.handle_async_request(request)
        raw_headers = [(name.encode(), value.encode()) for name, value in response.headers.multi_items()]
        stream = response.stream
        assert isinstance(stream, httpx.AsyncByteStream)
        return Answer(response.status_code, response.reason_phrase.encode(), raw_headers, stream, stream.aclose)

    async def aclose(self) -> None:
        await self._transport.aclose()


def default_transport(base_url: str, timeout_s: float, max_connections: int) -> Transport:
    """The pooled connections, or the environment's proxy where it names one for the upstream."""
    parts = urllib.parse.urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"the url must be http:// or https:// and name a host, not {base_url!r}")
    https = parts.scheme == "https"
    ssl_context = httpx.create_ssl_context(trust_env=True) if https else None
    proxy = environment_proxy(base_url)
    if proxy is not None:
        engine = httpcore.AsyncHTTPProxy(
            proxy, ssl_context=ssl_context, max_connections=max_connections, keepalive_expiry=KEEPALIVE_EXPIRY_S
        )
        return ProxyTransport(base_url, timeout_s, engine)
    pool = Pool(parts.hostname, parts.port or (443 if https else 80), ssl_context, max_connections, timeout_s)
    return PooledTransport(parts, pool)


class UpstreamHTTP:
    """POST/GET JSON to `{base_url}{path}` over a Transport; a response is read whole, or kept
    open for SSE."""

    def __init__(
        self, base_url: str, timeout_s: float, max_connections: int, transport: Transport | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.transport = transport or default_transport(self.base_url, timeout_s, max_connections)

    async def send(self, method: str, path: str, api_key: str, body: bytes | None = None) -> Answer:
        """The answer, its body still unread (read it, then `aclose` it); raises StatusError,
        the body read and the response closed, when the status is not 2xx. The API key must be
        printable ASCII (inference.py checks it): it is written into the request as is."""
        response = await self.transport.send(method, path, api_key, body)
        if not 200 <= response.status < 300:
            try:
                content = await response.aread()
            finally:
                await response.aclose()
            by_name = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in response.headers}
            raise StatusError(response.status, content, by_name, response.reason.decode("latin-1"))
        return response

    async def json(self, method: str, path: str, api_key: str, body: bytes | None = None) -> Any:
        """The parsed JSON answer of a call (ValueError when it is not JSON)."""
        response = await self.send(method, path, api_key, body)
        try:
            content = await response.aread()
        finally:
            await response.aclose()
        return load_json(content)

    async def aclose(self) -> None:
        await self.transport.aclose()


class SSEDecoder:
    """Server-sent events -> the JSON of each event's data, fed the body's bytes as they come.

    Lines end in LF or CRLF; an event's `data:` lines are joined with LF; `event:`, `id:`,
    `retry:` and comments are ignored. After `data: [DONE]` nothing more is decoded, but the
    caller reads the body to its end all the same, so the connection goes back to the pool.
    An event whose JSON is an object with an `error` raises StreamError, as the SDK did.
    """

    def __init__(self) -> None:
        self._buffer = b""
        self._data: list[bytes] = []
        self.done = False

    def feed(self, chunk: bytes) -> list[Any]:
        if self.done:
            return []
        lines = (self._buffer + chunk).split(b"\n")
        self._buffer = lines.pop()
        events: list[Any] = []
        for line in lines:
            if line.endswith(b"\r"):
                line = line[:-1]
            if line.startswith(b"data:"):
                value = line[5:]
                self._data.append(value[1:] if value.startswith(b" ") else value)
            elif not line and self._data:
                data = self._data[0] if len(self._data) == 1 else b"\n".join(self._data)
                self._data = []
                if data.startswith(b"[DONE]"):
                    self.done = True
                    break
                events.append(_event(data))
        return events

    def close(self) -> list[Any]:
        """The events of a body that ended without the blank line after its last event."""
        return [] if self.done else self.feed(b"\n\n")


def _event(data: bytes) -> Any:
    event = load_json(data)
    if isinstance(event, dict) and event.get("error"):
        error = event["error"]
        message = error.get("message") if isinstance(error, dict) else error
        raise StreamError(message if isinstance(message, str) and message else "an error occurred during streaming")
    return event
