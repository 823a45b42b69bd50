"""The one implementation behind every OpenAI-compatible vendor, over client.py's lean HTTP client.

Non-streaming calls are retried here, on connection errors, 429 (waiting out Retry-After) and
5xx; a timeout or a stream is never retried. A stream that is closed early (the client went
away) closes the upstream HTTP response, which stops the generation behind it.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol, TypeVar

from llama_stack.apis.common import content_has_image, content_text, dump_json
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
)
from llama_stack.apis.models import Model
from llama_stack.distribution.request_context import provider_value
from llama_stack.models.openai.answers import chat_response, completion_response, embeddings_response
from llama_stack.models.openai.requests import chat_params, completion_params

from ..remote_common import vendor_model_name
from .client import SSEDecoder, Transport, UpstreamHTTP
from .config import OpenAICompatConfig
from .errors import PROVIDER_DATA, Upstream, retry_delay, translate
from .stream import ChatStream, CompletionStream, chat_event
from .vendors import Vendor

log = logging.getLogger(__name__)

T = TypeVar("T")
Out = TypeVar("Out")
NO_KEY = "EMPTY"  # what key-less servers (vLLM, TGI) are sent, as vLLM's docs do
CHAT, COMPLETIONS, EMBEDDINGS, MODELS = "/chat/completions", "/completions", "/embeddings", "/models"


class StreamState(Protocol[Out]):
    """ChatStream or CompletionStream: upstream chunks in, our chunks out."""

    def feed(self, chunk: dict[str, Any]) -> list[Out]: ...

    def finish(self) -> list[Out]: ...


class OpenAICompatInference:
    """Implements the Inference protocol and ModelOwner for one vendor and one config."""

    def __init__(self, vendor: Vendor, config: OpenAICompatConfig, transport: Transport | None = None) -> None:
        url = config.url or vendor.default_url
        if not url:
            raise ValueError(
                f"{vendor.provider_type} needs `url` in its config (the shipped run.yaml reads {vendor.url_env})"
            )
        self.vendor = vendor
        self.config = config
        self.upstream = Upstream(vendor.provider_type, url.rstrip("/"), config.timeout_s)
        # model id -> the vendor's name, worked out once; the router only passes registered models
        self._model_names: dict[str, str] = {}
        self.http = UpstreamHTTP(self.upstream.url, config.timeout_s, config.max_connections, transport)

    # --- keys ---------------------------------------------------------------------------------

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

    def _key(self, *, required: bool = True) -> tuple[str, str | None]:
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
        elif not (key.isascii() and key.isprintable()):  # it goes into a header line as is
            raise InvalidRequest(f"the {self.vendor.provider_type} API key from {source} is not printable ASCII")
        return key, source

    def model_name(self, model_id: str) -> str:
        name = self._model_names.get(model_id)
        if name is None:
            name = self._model_names[model_id] = vendor_model_name(
                model_id, self.vendor.model_ids, self.config.model_ids
            )
        return name

    # --- calls --------------------------------------------------------------------------------

    async def _call(
        self, method: str, path: str, params: dict[str, Any] | None, read: Callable[[Any], T], *, required: bool = True
    ) -> T:
        """One non-streaming call, retried where safe; `read` turns the answer's JSON into ours."""
        key, source = self._key(required=required)
        body = None if params is None else dump_json(params)
        attempt = 0
        while True:
            try:
                answer = await self.http.json(method, path, key, body)
                break
            except Exception as err:
                delay = retry_delay(err, attempt, self.config.retry_backoff_s)
                if delay is None or attempt >= self.config.max_retries:
                    raise translate(err, self.upstream, source) from err
                attempt += 1
                log.info("%s failed (%s); retry %d in %.2f s", self.upstream.where, type(err).__name__, attempt, delay)
                await asyncio.sleep(delay)
        try:
            return read(answer)
        except Exception as err:
            raise translate(err, self.upstream, source) from err

    def _stream(self, path: str, params: dict[str, Any], state: StreamState[T], first: T | None) -> AsyncIterator[T]:
        # The key and the body are made on the call, so a bad request fails before any chunk.
        key, source = self._key()
        params["stream"] = True
        if self.vendor.stream_usage:
            params["stream_options"] = {"include_usage": True}
        return self._chunks(path, dump_json(params), key, source, state, first)

    async def _chunks(
        self, path: str, body: bytes, key: str, source: str | None, state: StreamState[T], first: T | None
    ) -> AsyncIterator[T]:
        try:
            response = await self.http.send("POST", path, key, body)
        except Exception as err:
            raise translate(err, self.upstream, source) from err
        try:
            if first is not None:
                yield first
            decoder = SSEDecoder()
            chunks = response.aiter_stream()
            while True:
                try:
                    chunk = await anext(chunks, None)
                    if chunk is None:
                        outs = [out for event in decoder.close() for out in state.feed(event)]
                        outs += state.finish()
                    else:
                        outs = [out for event in decoder.feed(chunk) for out in state.feed(event)]
                except Exception as err:
                    raise translate(err, self.upstream, source, streaming=True) from err
                for out in outs:
                    yield out
                if chunk is None:
                    return
        finally:
            await response.aclose()

    # --- models -------------------------------------------------------------------------------

    async def list_upstream_models(self) -> list[str] | None:
        """The model ids the backend serves, or None where it cannot say (or no key is at hand)."""
        if not self.vendor.lists_models:
            return None
        if self.vendor.requires_api_key and self.api_key()[0] is None:
            return None
        return await self._call("GET", MODELS, None, _model_ids, required=False)

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
        await self.http.aclose()

    # --- inference ----------------------------------------------------------------------------

    async def chat_completion(self, request: ChatCompletionRequest) -> ChatCompletionResponse:
        params = chat_params(request, self.model_name(request.model_id), self.vendor)
        return await self._call("POST", CHAT, params, self._chat_response)

    def _chat_response(self, answer: Any) -> ChatCompletionResponse:
        return chat_response(answer, self.vendor.provider_type)

    def chat_completion_stream(
        self, request: ChatCompletionRequest
    ) -> AsyncIterator[ChatCompletionResponseStreamChunk]:
        params = chat_params(request, self.model_name(request.model_id), self.vendor)
        start = chat_event(ChatCompletionEventType.start)
        return self._stream(CHAT, params, ChatStream(self.vendor.provider_type), start)

    async def completion(self, request: CompletionRequest) -> CompletionResponse:
        params = completion_params(request, self.model_name(request.model_id), self.vendor)
        return await self._call("POST", COMPLETIONS, params, self._completion_response)

    def _completion_response(self, answer: Any) -> CompletionResponse:
        return completion_response(answer, self.vendor.provider_type)

    def completion_stream(self, request: CompletionRequest) -> AsyncIterator[CompletionResponseStreamChunk]:
        params = completion_params(request, self.model_name(request.model_id), self.vendor)
        return self._stream(COMPLETIONS, params, CompletionStream(self.vendor.provider_type), None)

    async def embeddings(self, request: EmbeddingsRequest) -> EmbeddingsResponse:
        if any(content_has_image(content) for content in request.contents):
            raise InvalidRequest(f"{self.vendor.provider_type} embeds text only; remove the images")
        params = {
            "model": self.model_name(request.model_id),
            "input": [content_text(content) for content in request.contents],
            "encoding_format": "float",
        }
        return await self._call("POST", EMBEDDINGS, params, embeddings_response)


def _model_ids(answer: Any) -> list[str]:
    return [str(model["id"]) for model in answer["data"]]
