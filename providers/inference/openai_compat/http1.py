"""HTTP/1.1 keep-alive connections to one origin, over asyncio with httptools' parser (the C
parser uvicorn uses; both come with the core dependency uvicorn[standard]).

Each call is one write (the request head and body together) and one parse of the answer as it
arrives; measured against httpcore's connections (h11 under anyio) it costs ~120 µs of CPU per
call instead of ~450, which is most of what the gateway adds in front of a fast backend. The
pool is a LIFO stack of idle connections with a bound on how many are open: O(1) per call.

A response is an `Answer` whose stream reads the body as it arrives (reading pauses when more
than HIGH_WATER bytes wait unread); closing it before the body has ended closes the connection,
which tells the upstream to stop generating. (httpcore's Response type-checks its headers and
stream on every call, ~5% of the gateway's CPU per request, so answers are this plain class.)
Failures are raised as httpcore's exceptions (ConnectError, ConnectTimeout, ReadTimeout, PoolTimeout,
RemoteProtocolError), which errors.py maps for this path and for the proxy path alike.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import cast

import httpcore
import httptools

# Idle connections older than this are not reused: servers close theirs after a few seconds
# (uvicorn, which vLLM and TGI's router use, after 5), and a request written on a connection
# the server is closing fails.
KEEPALIVE_EXPIRY_S = 4.0
HIGH_WATER = 1 << 20  # bytes of body read but not consumed before reading pauses
LOW_WATER = 1 << 16


class Connection(asyncio.Protocol):
    """One TCP (or TLS) connection, one request at a time; each wait for the answer's head or
    the body's next piece lasts at most `timeout_s`."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.busy = False  # a request is under way (bytes on an idle connection close it)
        self.idle_since = 0.0
        self._paused = False
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[None] | None = None
        self._reset()

    def _reset(self) -> None:
        if self._paused and self.transport is not None:
            self.transport.resume_reading()
        self._status = 0
        self._reason = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._headers_done = False
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._complete = False
        self._keep_alive = False
        self._error: Exception | None = None
        self._paused = False
        self._interim = False  # the message being parsed is a 1xx, not the answer
        self._sized = False  # the body's end is known from Content-Length or chunking

    # --- asyncio.Protocol -----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport's methods without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if not self.busy:  # nothing was asked: a server closing an idle connection (408...)
            self.abort()
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as err:
            self._fail(httpcore.RemoteProtocolError(f"the upstream's answer is not valid HTTP/1.1: {err}"))
            self.abort()
            return
        if self._buffered > HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._complete:
            return
        if self._headers_done and not self._sized and exc is None:
            self.on_message_complete()  # a body that ends when the connection does
            return
        what = "while sending the answer" if self._headers_done else "without answering"
        self._fail(httpcore.RemoteProtocolError(f"the upstream closed the connection {what}"))

    # --- httptools callbacks --------------------------------------------------------------------

    def on_status(self, reason: bytes) -> None:
        self._reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))
        lower = name.lower()
        if lower == b"content-length" or (lower == b"transfer-encoding" and b"chunked" in value.lower()):
            self._sized = True

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200:  # 100 Continue and the like: the answer follows
            self._interim = True
            self._headers, self._reason, self._sized = [], b"", False
            return
        self._status = status
        self._headers_done = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        self._chunks.append(body)
        self._buffered += len(body)
        self._wake()

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            return
        self._keep_alive = self._parser.should_keep_alive()  # only known until the next message
        self._complete = True
        self._wake()

    # --- the caller's side ------------------------------------------------------------------------

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _fail(self, error: Exception) -> None:
        if self._error is None:
            self._error = error
        self._wake()

    async def _wait(self) -> None:
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(self.timeout_s):
                await self._waiter
        except TimeoutError:
            self.abort()
            raise httpcore.ReadTimeout(f"no answer within {self.timeout_s:g} s") from None
        finally:
            self._waiter = None

    async def request(self, data: bytes) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        """Writes the request, waits for the answer's head: (status, reason, headers)."""
        assert self.transport is not None
        self._reset()
        self.busy = True
        self.transport.write(data)
        while not self._headers_done:
            if self._error is not None:
                raise self._error
            await self._wait()
        return self._status, self._reason, self._headers

    async def next_chunk(self) -> bytes | None:
        """The next piece of the body, or None at its end."""
        while True:
            if self._chunks:
                chunk = self._chunks.popleft()
                self._buffered -= len(chunk)
                if self._paused and self._buffered < LOW_WATER and self.transport is not None:
                    self._paused = False
                    self.transport.resume_reading()
                return chunk
            if self._complete:
                return None
            if self._error is not None:
                raise self._error
            await self._wait()

    @property
    def open(self) -> bool:
        return not self.closed and self.transport is not None and not self.transport.is_closing()

    @property
    def reusable(self) -> bool:
        return self._complete and self._keep_alive and self.open

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


class Pool:
    """At most `max_connections` open to (host, port); the idle ones reused most recent first.
    Waiting for a free connection, connecting, and each wait for the answer last at most `timeout_s`."""

    def __init__(
        self, host: str, port: int, ssl_context: ssl.SSLContext | None, max_connections: int, timeout_s: float
    ) -> None:
        self.timeout_s = timeout_s
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self._idle: list[Connection] = []
        self._slots = asyncio.Semaphore(max_connections)  # one per connection in use

    async def request(self, data: bytes) -> Answer:
        """Sends one whole request (head and body); the answer's stream reads its body."""
        if self._slots.locked():  # all connections busy: wait, at most the timeout
            try:
                async with asyncio.timeout(self.timeout_s):
                    await self._slots.acquire()
            except TimeoutError:
                raise httpcore.PoolTimeout(f"no connection came free within {self.timeout_s:g} s") from None
        else:
            await self._slots.acquire()
        connection: Connection | None = None
        try:
            connection = await self._connection()
            status, reason, headers = await connection.request(data)
        except BaseException:
            if connection is not None:
                connection.abort()
            self._slots.release()
            raise
        body = Body(self, connection)
        return Answer(status, reason, headers, body, body.aclose)

    async def _connection(self) -> Connection:
        now = time.monotonic()
        while self._idle:
            connection = self._idle.pop()
            if now - connection.idle_since < KEEPALIVE_EXPIRY_S and connection.open:
                return connection
            connection.abort()
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.timeout_s):
                _, connection = await loop.create_connection(
                    lambda: Connection(self.timeout_s),
                    self.host,
                    self.port,
                    ssl=self.ssl_context,
                    server_hostname=self.host if self.ssl_context is not None else None,
                )
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"no connection within {self.timeout_s:g} s") from None
        except OSError as err:
            raise httpcore.ConnectError(str(err) or type(err).__name__) from err
        return connection

    def give_back(self, connection: Connection) -> None:
        connection.busy = False
        if connection.reusable:
            connection.idle_since = time.monotonic()
            self._idle.append(connection)
        else:
            connection.abort()
        self._slots.release()

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.abort()


class Body:
    """A response body as it arrives; closing it gives the connection back (or closes it, when
    the body had not ended)."""

    def __init__(self, pool: Pool, connection: Connection) -> None:
        self._pool = pool
        self._connection = connection
        self._closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while (chunk := await self._connection.next_chunk()) is not None:
            yield chunk

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            self._pool.give_back(self._connection)


class Answer:
    """An upstream's answer: its status line and headers, and its body as it arrives. Read the
    body (`aiter_stream` or `aread`), then `aclose` it: that frees the connection."""

    __slots__ = ("_stream", "aclose", "headers", "reason", "status")

    def __init__(
        self,
        status: int,
        reason: bytes,
        headers: list[tuple[bytes, bytes]],
        stream: AsyncIterable[bytes],
        aclose: Callable[[], Awaitable[None]],
    ) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        self._stream = stream
        self.aclose = aclose

    def aiter_stream(self) -> AsyncIterator[bytes]:
        return aiter(self._stream)

    async def aread(self) -> bytes:
        return b"".join([chunk async for chunk in self._stream])
