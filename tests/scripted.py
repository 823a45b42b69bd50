"""A scripted inference provider for tests: it answers by rule, not by model, so server and
routing behaviour can be asserted exactly. It is installed in-process with install_provider."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator

from pydantic import BaseModel

from llama_stack.apis.common import CompletionMessage, StopReason, ToolCall, content_text
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
    ToolCallDelta,
    ToolCallParseStatus,
    Usage,
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

    async def _words(self, prompt: str) -> AsyncGenerator[str, None]:
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
        prompt = content_text(request.messages[-1].content)
        call = _weather_call(request)
        if call is not None:
            message = CompletionMessage(content="", tool_calls=[call], stop_reason=StopReason.end_of_message)
            return ChatCompletionResponse(completion_message=message, usage=_usage(prompt, ""))
        words = [word async for word in self._words(prompt)][: _limit(request.sampling_params.max_tokens)]
        stop = StopReason.out_of_tokens if _truncated(self._reply(prompt), words) else StopReason.end_of_turn
        message = CompletionMessage(content="".join(words), stop_reason=stop)
        return ChatCompletionResponse(completion_message=message, usage=_usage(prompt, "".join(words)))

    async def chat_completion_stream(
        self, request: ChatCompletionRequest
    ) -> AsyncIterator[ChatCompletionResponseStreamChunk]:
        prompt = content_text(request.messages[-1].content)
        call = _weather_call(request)
        if call is not None:
            yield _chat_chunk(ChatCompletionEventType.start, "")
            started = ToolCallDelta(content="", parse_status=ToolCallParseStatus.started)
            yield _chat_chunk(ChatCompletionEventType.progress, started)
            done = ToolCallDelta(content=call, parse_status=ToolCallParseStatus.success)
            yield _chat_chunk(ChatCompletionEventType.progress, done)
            yield _chat_chunk(ChatCompletionEventType.complete, "", StopReason.end_of_message, _usage(prompt, ""))
            return
        words = self._words(prompt)
        first = await anext(words)
        yield _chat_chunk(ChatCompletionEventType.start, "")
        yield _chat_chunk(ChatCompletionEventType.progress, first)
        sent = [first]
        limit = _limit(request.sampling_params.max_tokens)
        async for word in words:
            if len(sent) == limit:
                await words.aclose()
                break
            sent.append(word)
            yield _chat_chunk(ChatCompletionEventType.progress, word)
        stop = StopReason.out_of_tokens if _truncated(self._reply(prompt), sent) else StopReason.end_of_turn
        yield _chat_chunk(ChatCompletionEventType.complete, "", stop, _usage(prompt, "".join(sent)))

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
    kind: ChatCompletionEventType,
    delta: str | ToolCallDelta,
    stop: StopReason | None = None,
    usage: Usage | None = None,
) -> ChatCompletionResponseStreamChunk:
    return ChatCompletionResponseStreamChunk(
        event=ChatCompletionResponseEvent(event_type=kind, delta=delta, stop_reason=stop, usage=usage)
    )


def _limit(max_tokens: int | None) -> int:
    """The scripted model's tokens are words."""
    return max_tokens or 1_000_000


def _truncated(reply: str, words: list[str]) -> bool:
    return "".join(words) != reply


def _usage(prompt: str, reply: str) -> Usage:
    return Usage(prompt_tokens=len(prompt.split()), completion_tokens=len(reply.split()))


def _weather_call(request: ChatCompletionRequest) -> ToolCall | None:
    """Asked about the weather in Paris with a get_weather tool on offer, it calls the tool."""
    asks = "weather in Paris" in content_text(request.messages[-1].content)
    if asks and any(tool.tool_name == "get_weather" for tool in request.tools):
        return ToolCall(call_id="call-1", tool_name="get_weather", arguments={"city": "Paris"})
    return None


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
