"""The one implementation behind every OpenAI-compatible vendor, through the official openai SDK.

The SDK's own retries are off (max_retries=0): this module retries non-streaming calls itself, on
connection errors, 429 (waiting out Retry-After) and 5xx, and never retries a timeout or a
stream. A stream that is closed early (the client went away) closes the upstream HTTP response,
which stops the generation behind it.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar, cast

from openai import AsyncOpenAI, AsyncStream
from openai.types.chat import ChatCompletionChunk
from openai.types.completion import Completion

from llama_stack.apis.common import content_has_image, content_text
from llama_stack.apis.errors import InvalidRequest
from llama_stack.apis.inference import (
    ChatCompletionEventType,
    ChatCompletionRequest,
    ChatCompletionResponse,
    ChatCompletionResponseStreamChunk,
    CompletionRequest,
    CompletionResponse,
    CompletionResponseStreamChunk,
    EmbeddingsRequest,
    EmbeddingsResponse,
    Usage,
)
from llama_stack.apis.models import Model
from llama_stack.distribution.request_context import provider_value

from ..remote_common import vendor_model_name
from .config import OpenAICompatConfig
from .convert import chat_params, chat_response, completion_params, completion_response
from .errors import PROVIDER_DATA, Upstream, retry_delay, translate
from .stream import ChatStream, CompletionStream, chat_event
from .vendors import Vendor

log = logging.getLogger(__name__)

T = TypeVar("T")
NO_KEY = "EMPTY"  # what key-less servers (vLLM, TGI) are sent, as vLLM's docs do
MAX_CLIENTS = 32  # SDK clients kept per distinct API key (they share one connection pool)


class OpenAICompatInference:
    """Implements the Inference protocol and ModelOwner for one vendor and one config."""

    def __init__(self, vendor: Vendor, config: OpenAICompatConfig) -> None:
        url = config.url or vendor.default_url
        if not url:
            raise ValueError(
                f"{vendor.provider_type} needs `url` in its config (the shipped run.yaml reads {vendor.url_env})"
            )
        self.vendor = vendor
        self.config = config
        self.upstream = Upstream(vendor.provider_type, url.rstrip("/"), config.timeout_s)
        self._base = AsyncOpenAI(base_url=self.upstream.url, api_key=NO_KEY, timeout=config.timeout_s, max_retries=0)
        self._clients: OrderedDict[str, AsyncOpenAI] = OrderedDict()

    # --- keys and clients ---------------------------------------------------------------------

    def api_key(self) -> tuple[str | None, str | None]:
        """The key for this request and where it came from: provider data, config, environment."""
        vendor = self.vendor
        sent = provider_value(vendor.provider_data_key)
        if sent:
            return sent, PROVIDER_DATA
        if self.config.api_key is not None and self.config.api_key.get_secret_value():
            return self.config.api_key.get_secret_value(), "the provider config (api_key)"
        from_env = os.environ.get(vendor.api_key_env)
        if from_env:
            return from_env, f"the {vendor.api_key_env} environment variable"
        return None, None

    def _client(self, *, required: bool = True) -> tuple[AsyncOpenAI, str | None]:
        key, source = self.api_key()
        if key is None:
            if required and self.vendor.requires_api_key:
                raise InvalidRequest(
                    f"{self.vendor.provider_type} needs an API key: send it per request in the "
                    f'X-LlamaStack-ProviderData header as {{"{self.vendor.provider_data_key}": "..."}}, '
                    f"set api_key in the provider's config, or set the {self.vendor.api_key_env} "
                    "environment variable"
                )
            key = NO_KEY
        client = self._clients.get(key)
        if client is None:
            client = self._base if key == NO_KEY else self._base.with_options(api_key=key)
            self._clients[key] = client
            if len(self._clients) > MAX_CLIENTS:
                self._clients.popitem(last=False)
        else:
            self._clients.move_to_end(key)
        return client, source

    def model_name(self, model_id: str) -> str:
        return vendor_model_name(model_id, self.vendor.model_ids, self.config.model_ids)

    # --- calls --------------------------------------------------------------------------------

    async def _retrying(self, call: Callable[..., Awaitable[T]], params: dict[str, Any], source: str | None) -> T:
        attempt = 0
        while True:
            try:
                return await call(**params)
            except Exception as err:
                delay = retry_delay(err, attempt, self.config.retry_backoff_s)
                if delay is None or attempt >= self.config.max_retries:
                    raise translate(err, self.upstream, source) from err
                attempt += 1
                log.info("%s failed (%s); retry %d in %.2f s", self.upstream.where, type(err).__name__, attempt, delay)
                await asyncio.sleep(delay)

    async def _once(self, call: Callable[..., Awaitable[T]], params: dict[str, Any], source: str | None) -> T:
        try:
            return await call(**params)
        except Exception as err:
            raise translate(err, self.upstream, source) from err

    async def _next(self, iterator: AsyncIterator[T], source: str | None) -> T | None:
        try:
            return await anext(iterator)
        except StopAsyncIteration:
            return None
        except Exception as err:
            raise translate(err, self.upstream, source) from err

    def _stream_params(self) -> dict[str, Any]:
        usage = {"stream_options": {"include_usage": True}} if self.vendor.stream_usage else {}
        return {"stream": True, **usage}

    # --- models -------------------------------------------------------------------------------

    async def list_upstream_models(self) -> list[str] | None:
        """The model ids the backend serves, or None where it cannot say (or no key is at hand)."""
        if not self.vendor.lists_models:
            return None
        if self.vendor.requires_api_key and self.api_key()[0] is None:
            return None
        client, source = self._client(required=False)
        page = await self._retrying(client.models.list, {}, source)
        return [model.id async for model in page]

    async def register_model(self, model: Model) -> Model:
        name = self.model_name(model.provider_resource_id)
        if self.config.verify_models:
            available = await self.list_upstream_models()
            if available is not None and name not in available:
                raise InvalidRequest(
                    f"{self.upstream.where} does not serve model '{name}' (asked for {model.identifier}); "
                    f"it serves: {', '.join(sorted(available)) or 'nothing'}"
                )
        return model.model_copy(update={"provider_resource_id": name})

    async def unregister_model(self, model_id: str) -> None:
        return None  # nothing is held per model

    async def shutdown(self) -> None:
        self._clients.clear()
        await self._base.close()

    # --- inference ----------------------------------------------------------------------------

    async def chat_completion(self, request: ChatCompletionRequest) -> ChatCompletionResponse:
        params = chat_params(request, self.model_name(request.model_id), self.vendor)
        client, source = self._client()
        completion = await self._retrying(client.chat.completions.create, params, source)
        return chat_response(completion, self.vendor.provider_type)

    def chat_completion_stream(
        self, request: ChatCompletionRequest
    ) -> AsyncIterator[ChatCompletionResponseStreamChunk]:
        # Checked on the call, so a bad request fails before any chunk is sent.
        params = {**chat_params(request, self.model_name(request.model_id), self.vendor), **self._stream_params()}
        client, source = self._client()
        return self._chat_chunks(client, params, source)

    async def _chat_chunks(
        self, client: AsyncOpenAI, params: dict[str, Any], source: str | None
    ) -> AsyncIterator[ChatCompletionResponseStreamChunk]:
        stream = cast(
            AsyncStream[ChatCompletionChunk], await self._once(client.chat.completions.create, params, source)
        )
        try:
            state = ChatStream(self.vendor.provider_type)
            yield chat_event(ChatCompletionEventType.start)
            iterator = stream.__aiter__()
            while (chunk := await self._next(iterator, source)) is not None:
                for out in state.feed(chunk):
                    yield out
            for out in state.finish():
                yield out
        finally:
            await stream.close()

    async def completion(self, request: CompletionRequest) -> CompletionResponse:
        params = completion_params(request, self.model_name(request.model_id), self.vendor)
        client, source = self._client()
        completion = await self._retrying(client.completions.create, params, source)
        return completion_response(completion, self.vendor.provider_type)

    def completion_stream(self, request: CompletionRequest) -> AsyncIterator[CompletionResponseStreamChunk]:
        params = {**completion_params(request, self.model_name(request.model_id), self.vendor), **self._stream_params()}
        client, source = self._client()
        return self._completion_chunks(client, params, source)

    async def _completion_chunks(
        self, client: AsyncOpenAI, params: dict[str, Any], source: str | None
    ) -> AsyncIterator[CompletionResponseStreamChunk]:
        stream = cast(AsyncStream[Completion], await self._once(client.completions.create, params, source))
        try:
            state = CompletionStream(self.vendor.provider_type)
            iterator = stream.__aiter__()
            while (chunk := await self._next(iterator, source)) is not None:
                for out in state.feed(chunk):
                    yield out
            for out in state.finish():
                yield out
        finally:
            await stream.close()

    async def embeddings(self, request: EmbeddingsRequest) -> EmbeddingsResponse:
        if any(content_has_image(content) for content in request.contents):
            raise InvalidRequest(f"{self.vendor.provider_type} embeds text only; remove the images")
        params = {
            "model": self.model_name(request.model_id),
            "input": [content_text(content) for content in request.contents],
            "encoding_format": "float",
        }
        client, source = self._client()
        result = await self._retrying(client.embeddings.create, params, source)
        vectors = [item.embedding for item in sorted(result.data, key=lambda item: item.index)]
        usage = Usage(prompt_tokens=result.usage.prompt_tokens, completion_tokens=0) if result.usage else None
        return EmbeddingsResponse(embeddings=vectors, usage=usage)
