"""Server-sent events, both forms the stack sends: the /alpha face's `data: <json>` frames that end
with the connection (no [DONE]), and the /v1 face's frames ending with `data: [DONE]`. An error
event (`data: {"error": {...}}`, or an `event: error` frame) raises the typed error of its type.

`stream_sse` / `astream_sse` turn a response into parsed JSON payloads; `Stream` / `AsyncStream`
wrap them into typed chunks and own the response, closing it when iteration ends or breaks off."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

import httpx

from .errors import APIConnectionError, APIError, APITimeoutError, error_from_event, request_of

T = TypeVar("T")

DONE = "[DONE]"


class _EventDecoder:
    """Collects `data:` lines until the blank line that ends an event (the SSE spec, minus ids
    and retry hints, which the stack never sends)."""

    def __init__(self) -> None:
        self.data: list[str] = []
        self.event = ""

    def feed(self, line: str) -> tuple[str, str] | None:
        if not line:
            if not self.data:
                self.event = ""
                return None
            event = (self.event, "\n".join(self.data))
            self.data, self.event = [], ""
            return event
        if line.startswith(":"):
            return None
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "data":
            self.data.append(value)
        elif field == "event":
            self.event = value
        return None

    def flush(self) -> tuple[str, str] | None:
        """A final event the server did not end with a blank line."""
        return self.feed("")


class _PayloadReader:
    """The lines of an SSE body -> its JSON payloads, until `done_marker` (when given) or the end;
    it does no I/O, so the sync and async readers below share it."""

    def __init__(self, response: httpx.Response, done_marker: str | None) -> None:
        self._decoder = _EventDecoder()
        self._response = response
        self._done_marker = done_marker
        self.ended = False  # the done marker came: nothing after it is read

    def feed(self, line: str) -> list[Any]:
        event = self._decoder.feed(line)
        return [] if event is None else self._take(event)

    def finish(self) -> list[Any]:
        last = self._decoder.flush()
        return [] if last is None or self.ended else self._take(last)

    def _take(self, event: tuple[str, str]) -> list[Any]:
        kind, data = event
        if self._done_marker is not None and data.strip() == self._done_marker:
            self.ended = True
            return []
        try:
            payload = json.loads(data)
        except ValueError as error:
            raise APIError(f"the server sent an event that is not JSON: {data[:200]!r}") from error
        if isinstance(payload, dict) and (kind == "error" or "error" in payload):
            raise error_from_event(payload if "error" in payload else {"error": payload}, self._response)
        return [payload]


@contextmanager
def _transport_errors(response: httpx.Response) -> Iterator[None]:
    """httpx's errors while a body is read, as the SDK's typed errors."""
    try:
        yield
    except httpx.TimeoutException as error:
        raise APITimeoutError("the stream timed out", request=request_of(response)) from error
    except httpx.TransportError as error:
        raise APIConnectionError(f"the stream broke off: {error}", request=request_of(response)) from error


def stream_sse(response: httpx.Response, done_marker: str | None = None) -> Iterator[Any]:
    """The JSON payloads of a streaming response, in order. With `done_marker` (the /v1 face's
    "[DONE]") the stream ends at that marker; without it, at the end of the body."""
    reader = _PayloadReader(response, done_marker)
    with _transport_errors(response):
        for line in response.iter_lines():
            yield from reader.feed(line)
            if reader.ended:
                return
    yield from reader.finish()


async def astream_sse(response: httpx.Response, done_marker: str | None = None) -> AsyncIterator[Any]:
    """`stream_sse` for an async response."""
    reader = _PayloadReader(response, done_marker)
    with _transport_errors(response):
        async for line in response.aiter_lines():
            for payload in reader.feed(line):
                yield payload
            if reader.ended:
                return
    for payload in reader.finish():
        yield payload


class Stream(Generic[T]):
    """An iterator of typed chunks over an open response. Use it in a `with` block (or iterate it
    to the end) so the connection is released; `close()` stops the server's generation."""

    def __init__(self, response: httpx.Response, parse: Callable[[Any], T], done_marker: str | None = None) -> None:
        self.response = response
        self._chunks = (parse(payload) for payload in stream_sse(response, done_marker))

    def __iter__(self) -> Iterator[T]:
        try:
            yield from self._chunks
        finally:
            self.close()

    def __next__(self) -> T:
        try:
            return next(self._chunks)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        self.response.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


class AsyncStream(Generic[T]):
    """The async twin of `Stream`: `async for chunk in stream`, `async with stream`."""

    def __init__(self, response: httpx.Response, parse: Callable[[Any], T], done_marker: str | None = None) -> None:
        self.response = response
        self._payloads = astream_sse(response, done_marker)
        self._parse = parse

    async def __aiter__(self) -> AsyncIterator[T]:
        try:
            async for payload in self._payloads:
                yield self._parse(payload)
        finally:
            await self.close()

    async def __anext__(self) -> T:
        try:
            return self._parse(await anext(self._payloads))
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        await self.response.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
