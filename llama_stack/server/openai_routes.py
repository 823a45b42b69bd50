"""The OpenAI-compatible face: /v1/models, /v1/chat/completions, /v1/completions,
/v1/embeddings. It calls the same routers as the /alpha face and knows no provider."""

from __future__ import annotations

import base64
import struct
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, TypeVar

from fastapi import APIRouter
from starlette.responses import Response

from llama_stack.apis.common import SafetyViolation, content_text, dump_json
from llama_stack.apis.errors import InvalidRequest
from llama_stack.apis.inference import (
    ChatCompletionEventType,
    ChatCompletionResponseStreamChunk,
    CompletionResponseStreamChunk,
    EmbeddingsRequest,
    Inference,
    ToolCallDelta,
    ToolCallParseStatus,
)
from llama_stack.apis.models import ModelType
from llama_stack.distribution.guardrails import GuardedChat, guarded_chat
from llama_stack.distribution.provider import Api
from llama_stack.distribution.resolver import Stack
from llama_stack.models.openai.answers import (
    StopSequenceFilter,
    chat_logprobs_body,
    cut_at_stop,
    finish_reason,
    new_id,
    now,
    tool_call_body,
    usage_body,
)
from llama_stack.models.openai.requests import stop_sequences, to_chat_request, to_completion_request
from llama_stack.server import openai_types as oai
from llama_stack.server.errors import stream_error_event
from llama_stack.server.params import JsonBodyRoute, json_response
from llama_stack.server.sse import sse_response

DONE = b"data: [DONE]\n\n"
T = TypeVar("T")


def _frame(chunk: Any) -> bytes:
    return b"data: " + dump_json(chunk) + b"\n\n"


def _error_frame(error: BaseException) -> bytes:
    return _frame(stream_error_event(error, "/v1/"))


def _inference(stack: Stack) -> Inference:
    return stack.faces[Api.inference]


def openai_router(stack: Stack) -> APIRouter:
    router = APIRouter(prefix="/v1", route_class=JsonBodyRoute)

    @router.get("/models")
    async def list_models() -> Response:
        models = await stack.models.list_models()
        data = [{"id": m.identifier, "object": "model", "created": 0, "owned_by": m.provider_id} for m in models]
        return json_response({"object": "list", "data": data})

    @router.get("/models/{model_id:path}")
    async def get_model(model_id: str) -> Response:
        model = await stack.models.get_usable(model_id)
        return json_response({"id": model.identifier, "object": "model", "created": 0, "owned_by": model.provider_id})

    @router.post("/chat/completions")
    async def chat_completions(body: oai.ChatCompletionsRequest) -> Response:
        request = to_chat_request(body)
        stops = stop_sequences(body.stop)
        completion_id, created = new_id("chatcmpl"), now()
        # Shields asked for with extra_body={"guardrails": ...} wrap the call (docs/safety.md); a
        # violation ends the answer with finish_reason "content_filter".
        inference = _inference(stack)
        guard = None if body.guardrails is None else await guarded_chat(stack, inference, body.guardrails)
        chat = guard or inference
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            chunks = chat.chat_completion_stream(request)
            stream = _chat_stream(chunks, completion_id, created, body.model, stops, include_usage)
            marked = _content_filtered_stream(stream, guard) if guard else stream
            return await sse_response(marked, frame=_frame, error_frame=_error_frame, trailer=DONE)
        response = await chat.chat_completion(request)
        message = response.completion_message
        text, stopped = cut_at_stop(content_text(message.content), stops)
        calls = [tool_call_body(call) for call in message.tool_calls]
        reply: dict[str, Any] = {"role": "assistant", "content": text if text or not calls else None}
        if calls:
            reply["tool_calls"] = calls
        choice = {
            "index": 0,
            "message": reply,
            "finish_reason": "stop" if stopped else finish_reason(message.stop_reason, bool(calls)),
            "logprobs": chat_logprobs_body(response.logprobs),
        }
        return json_response(
            _content_filtered(
                guard.violation if guard else None,
                {
                    "id": completion_id,
                    "object": "chat.completion",
                    "created": created,
                    "model": body.model,
                    "choices": [choice],
                    "usage": usage_body(response.usage),
                },
            )
        )

    @router.post("/completions")
    async def completions(body: oai.CompletionsRequest) -> Response:
        request = to_completion_request(body)
        stops = stop_sequences(body.stop)
        completion_id, created = new_id("cmpl"), now()
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            chunks = _inference(stack).completion_stream(request)
            stream = _completion_stream(chunks, completion_id, created, body.model, stops, include_usage)
            return await sse_response(stream, frame=_frame, error_frame=_error_frame, trailer=DONE)
        response = await _inference(stack).completion(request)
        text, stopped = cut_at_stop(response.content, stops)
        choice = {
            "index": 0,
            "text": text,
            "logprobs": None,
            "finish_reason": "stop" if stopped else finish_reason(response.stop_reason, False),
        }
        return json_response(
            {
                "id": completion_id,
                "object": "text_completion",
                "created": created,
                "model": body.model,
                "choices": [choice],
                "usage": usage_body(response.usage),
            }
        )

    @router.post("/embeddings")
    async def embeddings(body: oai.EmbeddingsRequest) -> Response:
        if isinstance(body.input, str):
            texts = [body.input]
        elif all(isinstance(item, str) for item in body.input):
            texts = [str(item) for item in body.input]
        else:
            raise InvalidRequest("input: token arrays are not supported; send text")
        if not texts:
            raise InvalidRequest("input: give at least one text")
        model = await stack.models.get(body.model)
        if model.model_type != ModelType.embedding:
            raise InvalidRequest(f"model '{body.model}' is not an embedding model")
        response = await _inference(stack).embeddings(EmbeddingsRequest(model_id=body.model, contents=list(texts)))
        if body.dimensions is not None and response.embeddings and body.dimensions != len(response.embeddings[0]):
            raise InvalidRequest(f"dimensions: model '{body.model}' makes {len(response.embeddings[0])}-dim vectors")
        data = [
            {"object": "embedding", "index": i, "embedding": _encode(vector, body.encoding_format)}
            for i, vector in enumerate(response.embeddings)
        ]
        usage = usage_body(response.usage) or {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        usage.pop("completion_tokens")
        return json_response({"object": "list", "data": data, "model": body.model, "usage": usage})

    return router


# Guardrails on this face: a violation is a normal answer whose finish_reason is "content_filter".
def _content_filtered(violation: SafetyViolation | None, payload: dict[str, Any]) -> dict[str, Any]:
    choices = payload.get("choices") or []
    if violation is None or not choices or choices[0].get("finish_reason") is None:
        return payload
    choices[0]["finish_reason"] = "content_filter"
    return {**payload, "violation": violation.model_dump(mode="json")}


async def _content_filtered_stream(
    chunks: AsyncGenerator[dict[str, Any], None], chat: GuardedChat
) -> AsyncIterator[dict[str, Any]]:
    try:
        async for chunk in chunks:
            yield _content_filtered(chat.violation, chunk)
    finally:
        await chunks.aclose()


def _encode(vector: list[float], encoding: str) -> list[float] | str:
    if encoding == "float":
        return vector
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


async def _chat_stream(
    chunks: AsyncIterator[ChatCompletionResponseStreamChunk],
    completion_id: str,
    created: int,
    model: str,
    stops: list[str],
    include_usage: bool,
) -> AsyncGenerator[dict[str, Any], None]:
    head = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model}

    def chunk(delta: dict[str, Any], finish: str | None = None, logprobs: Any = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": logprobs}
        return {**head, "choices": [choice]}

    stop_filter = StopSequenceFilter(stops)
    tool_calls = 0
    usage = None
    finish = "stop"
    try:
        # The provider's first chunk comes before ours, so a request that fails at once (upstream
        # down, bad input) is still answered with its status code rather than a 200 stream.
        first = await anext(chunks, None)
        yield chunk({"role": "assistant", "content": ""})
        async for item in _starting_with(first, chunks):
            event = item.event
            if event.event_type == ChatCompletionEventType.complete:
                usage = event.usage
                finish = finish_reason(event.stop_reason, tool_calls > 0)
                break
            if isinstance(event.delta, ToolCallDelta):
                if event.delta.parse_status == ToolCallParseStatus.success and not isinstance(event.delta.content, str):
                    yield chunk({"tool_calls": [tool_call_body(event.delta.content, index=tool_calls)]})
                    tool_calls += 1
                elif event.delta.parse_status == ToolCallParseStatus.failure and isinstance(event.delta.content, str):
                    yield chunk({"content": event.delta.content})
                continue
            text, stopped = stop_filter.feed(event.delta)
            if text or event.logprobs:
                yield chunk({"content": text}, logprobs=chat_logprobs_body(event.logprobs))
            if stopped:
                break
        rest = stop_filter.flush()
        if rest:
            yield chunk({"content": rest})
        yield chunk({}, finish)
        if include_usage:
            yield {**head, "choices": [], "usage": usage_body(usage)}
    finally:
        await chunks.aclose()  # type: ignore[attr-defined]


async def _starting_with(first: T | None, rest: AsyncIterator[T]) -> AsyncIterator[T]:
    if first is not None:
        yield first
    async for item in rest:
        yield item


async def _completion_stream(
    chunks: AsyncIterator[CompletionResponseStreamChunk],
    completion_id: str,
    created: int,
    model: str,
    stops: list[str],
    include_usage: bool,
) -> AsyncIterator[dict[str, Any]]:
    head = {"id": completion_id, "object": "text_completion", "created": created, "model": model}

    def chunk(text: str, finish: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "text": text, "finish_reason": finish, "logprobs": None}
        return {**head, "choices": [choice]}

    stop_filter = StopSequenceFilter(stops)
    usage = None
    finish = "stop"
    try:
        async for item in chunks:
            text, stopped = stop_filter.feed(item.delta)
            if text:
                yield chunk(text)
            if item.stop_reason is not None:
                usage, finish = item.usage, finish_reason(item.stop_reason, False)
            if stopped or item.stop_reason is not None:
                break
        rest = stop_filter.flush()
        if rest:
            yield chunk(rest)
        yield chunk("", finish)
        if include_usage:
            yield {**head, "choices": [], "usage": usage_body(usage)}
    finally:
        await chunks.aclose()  # type: ignore[attr-defined]
