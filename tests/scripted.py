"""A scripted inference provider for tests: it answers by rule, not by model, so server and
routing behaviour can be asserted exactly. It is installed in-process with install_provider."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from pydantic import BaseModel

from llama_stack.apis.common import CompletionMessage, StopReason, content_text
from llama_stack.apis.errors import InvalidRequest, UpstreamError
from llama_stack.apis.inference import (
    ChatCompletionEventType,
    ChatCompletionRequest,
    ChatCompletionResponse,
    ChatCompletionResponseEvent,
    ChatCompletionResponseStreamChunk,
    CompletionRequest,
    CompletionResponse,
    CompletionResponseStreamChunk,
    EmbeddingsRequest,
    EmbeddingsResponse,
)
from llama_stack.apis.models import Model
from llama_stack.distribution.provider import Api, Deps, ProviderSpec
from llama_stack.distribution.request_context import provider_value


class ScriptedConfig(BaseModel):
    """`reply_prefix` is prepended to the echoed user text; `token_delay_s` paces streams."""

    reply_prefix: str = "echo: "
    token_delay_s: float = 0.0
    refuse_models: list[str] = []


class ScriptedInference:
    """Echoes the last user message word by word, after a prefix that the request's provider data
    may override (`reply_prefix`). Special prompts drive failure paths:
    'fail-now' fails before the first token, 'fail-midway' after two tokens, 'forever' never ends."""

    def __init__(self, config: ScriptedConfig) -> None:
        self.config = config
        self.registered: list[str] = []
        self.cancelled_streams = 0
        self.active_streams = 0

    async def register_model(self, model: Model) -> Model:
        if model.provider_resource_id in self.config.refuse_models:
            raise InvalidRequest(f"no weights for {model.provider_resource_id}")
        self.registered.append(model.identifier)
        return model

    async def unregister_model(self, model_id: str) -> None:
        self.registered.remove(model_id)

    def _reply(self, prompt: str) -> str:
        prefix = provider_value("reply_prefix") or self.config.reply_prefix
        return f"{prefix}{prompt}"

    async def _words(self, prompt: str) -> AsyncIterator[str]:
        if prompt == "fail-now":
            raise UpstreamError("scripted backend refused the request")
        self.active_streams += 1
        try:
            words = self._reply(prompt).split(" ")
            index = 0
            while prompt == "forever" or index < len(words):
                if prompt.startswith("fail-midway") and index == 2:
                    raise UpstreamError("scripted backend died mid-stream")
                await asyncio.sleep(self.config.token_delay_s)
                word = words[index % len(words)]
                yield word if index == 0 else " " + word
                index += 1
        except (asyncio.CancelledError, GeneratorExit):
            self.cancelled_streams += 1
            raise
        finally:
            self.active_streams -= 1

    async def chat_completion(self, request: ChatCompletionRequest) -> ChatCompletionResponse:
        text = "".join([word async for word in self._words(content_text(request.messages[-1].content))])
        message = CompletionMessage(content=text, stop_reason=StopReason.end_of_turn)
        return ChatCompletionResponse(completion_message=message)

    async def chat_completion_stream(
        self, request: ChatCompletionRequest
    ) -> AsyncIterator[ChatCompletionResponseStreamChunk]:
        words = self._words(content_text(request.messages[-1].content))
        first = await anext(words)
        yield _chat_chunk(ChatCompletionEventType.start, "")
        yield _chat_chunk(ChatCompletionEventType.progress, first)
        async for word in words:
            yield _chat_chunk(ChatCompletionEventType.progress, word)
        yield _chat_chunk(ChatCompletionEventType.complete, "", StopReason.end_of_turn)

    async def completion(self, request: CompletionRequest) -> CompletionResponse:
        text = "".join([word async for word in self._words(content_text(request.content))])
        return CompletionResponse(content=text, stop_reason=StopReason.end_of_turn)

    async def completion_stream(self, request: CompletionRequest) -> AsyncIterator[CompletionResponseStreamChunk]:
        async for word in self._words(content_text(request.content)):
            yield CompletionResponseStreamChunk(delta=word)
        yield CompletionResponseStreamChunk(delta="", stop_reason=StopReason.end_of_turn)

    async def embeddings(self, request: EmbeddingsRequest) -> EmbeddingsResponse:
        return EmbeddingsResponse(embeddings=[[float(len(content_text(c))), 1.0] for c in request.contents])


def _chat_chunk(
    kind: ChatCompletionEventType, delta: str, stop: StopReason | None = None
) -> ChatCompletionResponseStreamChunk:
    return ChatCompletionResponseStreamChunk(
        event=ChatCompletionResponseEvent(event_type=kind, delta=delta, stop_reason=stop)
    )


async def _factory(config: ScriptedConfig, deps: Deps) -> ScriptedInference:
    return ScriptedInference(config)


SCRIPTED_SPEC = ProviderSpec(
    api=Api.inference,
    provider_type="test::scripted",
    config_class=ScriptedConfig,
    factory=_factory,
    description="scripted inference for tests",
)

NEEDS_MISSING_MODULE_SPEC = ProviderSpec(
    api=Api.inference,
    provider_type="test::needs-missing-module",
    config_class=ScriptedConfig,
    factory=_factory,
    description="a provider whose extra is not installed",
    required_modules=("a_module_that_is_not_installed",),
    extra="imaginary",
)
