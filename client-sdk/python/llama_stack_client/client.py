"""LlamaStackClient and AsyncLlamaStackClient: one base holds the configuration, request building
and retry decisions; each twin only sends over its httpx client and sleeps its own way."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

import httpx

from .calls import Call, StreamCall
from .errors import APIConnectionError, APIStatusError, APITimeoutError, error_from_response
from .resources.agents import Agents
from .resources.inference import Inference
from .resources.registries import Inspect, Memory, MemoryBanks, Models, Safety, Shields
from .retries import MAX_RETRY_AFTER_S, RetryPolicy
from .streaming import AsyncStream, Stream

T = TypeVar("T")
H = TypeVar("H", httpx.Client, httpx.AsyncClient)
S = TypeVar("S")  # how a twin waits between retries: time.sleep, or asyncio.sleep

DEFAULT_BASE_URL = "http://localhost:5000"
DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=5.0)
PROVIDER_DATA_HEADER = "X-LlamaStack-ProviderData"


class BaseClient(Generic[H, S]):
    """`base_url` defaults to $LLAMA_STACK_BASE_URL, then http://localhost:5000; `api_key` to
    $LLAMA_STACK_API_KEY (sent as a bearer token). `provider_data` (e.g. {"together_api_key": ...})
    goes to the providers in the X-LlamaStack-ProviderData header. `timeout` is in seconds or an
    httpx.Timeout; a stream's read timeout is the longest wait between two chunks. A server's
    Retry-After is waited out up to `max_retry_after_s`; beyond it the call fails at once with the
    server's error rather than retry early."""

    inference: Inference[Self]
    safety: Safety[Self]
    memory: Memory[Self]
    models: Models[Self]
    shields: Shields[Self]
    memory_banks: MemoryBanks[Self]
    agents: Agents[Self]
    inspect: Inspect[Self]

    def __init__(
        self,
        base_url: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        max_retries: int = 2,
        max_retry_after_s: float = MAX_RETRY_AFTER_S,
        provider_data: Mapping[str, Any] | None = None,
        default_headers: Mapping[str, str] | None = None,
        http_client: H | None = None,
        sleep: S | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.base_url = (base_url or os.environ.get("LLAMA_STACK_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        self.api_key = api_key if api_key is not None else os.environ.get("LLAMA_STACK_API_KEY")
        self.timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self.max_retries = max_retries
        self.provider_data = dict(provider_data) if provider_data else None
        self.default_headers = dict(default_headers or {})
        self.retry_policy = RetryPolicy(clock=clock, max_retry_after_s=max_retry_after_s)
        self._owns_http = http_client is None
        self._http: H = http_client if http_client is not None else self._new_http()
        self._sleep: S = sleep if sleep is not None else self._default_sleep()
        self.inference = Inference(self)
        self.safety = Safety(self)
        self.memory = Memory(self)
        self.models = Models(self)
        self.shields = Shields(self)
        self.memory_banks = MemoryBanks(self)
        self.agents = Agents(self)
        self.inspect = Inspect(self)

    def _new_http(self) -> H:
        raise NotImplementedError

    def _default_sleep(self) -> S:
        raise NotImplementedError

    def with_options(
        self,
        *,
        timeout: float | httpx.Timeout | None = None,
        max_retries: int | None = None,
        provider_data: Mapping[str, Any] | None = None,
    ) -> Self:
        """A client sharing this one's connections, with some options changed."""
        return type(self)(
            self.base_url,
            api_key=self.api_key,
            timeout=timeout if timeout is not None else self.timeout,
            max_retries=max_retries if max_retries is not None else self.max_retries,
            max_retry_after_s=self.retry_policy.max_retry_after_s,
            provider_data=provider_data if provider_data is not None else self.provider_data,
            default_headers=self.default_headers,
            http_client=self._http,
            sleep=self._sleep,
            clock=self.retry_policy.clock,
        )

    @property
    def headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json", **self.default_headers}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        if self.provider_data is not None:
            headers[PROVIDER_DATA_HEADER] = json.dumps(self.provider_data)
        return headers

    def _build_request(self, call: Call[Any] | StreamCall[Any]) -> httpx.Request:
        headers = self.headers
        if isinstance(call, StreamCall):
            headers["Accept"] = "text/event-stream"
        return self._http.build_request(
            call.method,
            self.base_url + call.path,
            params=dict(call.query) if call.query else None,
            json=call.body if call.method != "GET" else None,
            headers=headers,
            timeout=self.timeout,
        )

    def _wait_before_retry(
        self,
        request: httpx.Request,
        retries_done: int,
        response: httpx.Response | None = None,
        error: httpx.TransportError | None = None,
    ) -> float:
        """Seconds to wait before sending `request` again, or the typed error to raise instead.
        `response` is an error response whose body has been read."""
        can_retry = retries_done < self.max_retries
        if error is not None:
            if can_retry and self.retry_policy.should_retry_error(request.method, error):
                return self.retry_policy.backoff(retries_done)
            if isinstance(error, httpx.TimeoutException):
                raise APITimeoutError(f"{request.method} {request.url.path} timed out", request=request) from error
            raise APIConnectionError(f"cannot reach {self.base_url}: {error}", request=request) from error
        assert response is not None
        if can_retry and self.retry_policy.should_retry_response(request.method, response):
            wait = self.retry_policy.delay(retries_done, response)
            if wait is not None:
                return wait
        raise error_from_response(response)

    @staticmethod
    def _json(response: httpx.Response) -> Any:
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError as error:
            raise APIStatusError(
                f"the server answered {response.request.url.path} with something that is not JSON",
                status_code=response.status_code,
                response=response,
                body=response.text,
            ) from error


class LlamaStackClient(BaseClient[httpx.Client, Callable[[float], None]]):
    """The synchronous client. Pass `http_client` to bring your own httpx.Client (a proxy, a
    MockTransport); `sleep` and `clock` are the waits between retries and the wall clock."""

    def _new_http(self) -> httpx.Client:
        return httpx.Client()

    def _default_sleep(self) -> Callable[[float], None]:
        return time.sleep

    def _send(self, call: Call[Any] | StreamCall[Any], stream: bool) -> httpx.Response:
        request = self._build_request(call)
        retries = 0
        while True:
            try:
                response = self._http.send(request, stream=stream)
            except httpx.TransportError as error:
                wait = self._wait_before_retry(request, retries, error=error)
            else:
                if response.is_success:
                    return response
                response.read()
                response.close()
                wait = self._wait_before_retry(request, retries, response=response)
            self._sleep(wait)
            retries += 1

    def _call(self, call: Call[T]) -> T:
        return call.parse(self._json(self._send(call, stream=False)))

    def _stream(self, call: StreamCall[T]) -> Stream[T]:
        return Stream(self._send(call, stream=True), call.parse, call.done_marker)

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


class AsyncLlamaStackClient(BaseClient[httpx.AsyncClient, Callable[[float], Awaitable[None]]]):
    """The asyncio twin of LlamaStackClient: every method returns an awaitable; streams are
    `async for` iterators."""

    def _new_http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient()

    def _default_sleep(self) -> Callable[[float], Awaitable[None]]:
        return asyncio.sleep

    async def _send(self, call: Call[Any] | StreamCall[Any], stream: bool) -> httpx.Response:
        request = self._build_request(call)
        retries = 0
        while True:
            try:
                response = await self._http.send(request, stream=stream)
            except httpx.TransportError as error:
                wait = self._wait_before_retry(request, retries, error=error)
            else:
                if response.is_success:
                    return response
                await response.aread()
                await response.aclose()
                wait = self._wait_before_retry(request, retries, response=response)
            await self._sleep(wait)
            retries += 1

    async def _call(self, call: Call[T]) -> T:
        return call.parse(self._json(await self._send(call, stream=False)))

    async def _stream(self, call: StreamCall[T]) -> AsyncStream[T]:
        return AsyncStream(await self._send(call, stream=True), call.parse, call.done_marker)

    async def close(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
