"""OpenAI stream chunks -> our stream chunks, one stream at a time.

Text arrives as progress deltas. A tool call is announced (`started`), its argument fragments
pass through as `in_progress` deltas, and when the upstream finishes the whole call is sent as
`success` with the parsed ToolCall (or `failure` with the raw text). The
`complete` event comes last, after the usage chunk that OpenAI sends once the choices are done.
Chunks arrive as the parsed JSON of each SSE event (client.SSEDecoder).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llama_stack.apis.common import ToolCall
from llama_stack.apis.errors import UpstreamError
from llama_stack.apis.inference import (
    ChatCompletionEventType,
    ChatCompletionResponseEvent,
    ChatCompletionResponseStreamChunk,
    CompletionResponseStreamChunk,
    TokenLogProbs,
    ToolCallDelta,
    ToolCallParseStatus,
    Usage,
)
from llama_stack.models.openai.answers import chat_logprobs, completion_logprobs, parse_arguments, stop_reason, usage


def chat_event(
    kind: ChatCompletionEventType,
    delta: str | ToolCallDelta = "",
    logprobs: list[TokenLogProbs] | None = None,
) -> ChatCompletionResponseStreamChunk:
    return ChatCompletionResponseStreamChunk(
        event=ChatCompletionResponseEvent(event_type=kind, delta=delta, logprobs=logprobs)
    )


def _progress(
    delta: str | ToolCallDelta, logprobs: list[TokenLogProbs] | None = None
) -> ChatCompletionResponseStreamChunk:
    return chat_event(ChatCompletionEventType.progress, delta, logprobs)


@dataclass
class _PartialCall:
    call_id: str = ""
    name: str = ""
    arguments: str = ""


class ChatStream:
    def __init__(self, provider_type: str) -> None:
        self.provider_type = provider_type
        self.calls: dict[int, _PartialCall] = {}
        self.finish_reason: str | None = None
        self.usage: Usage | None = None

    def feed(self, chunk: dict[str, Any]) -> list[ChatCompletionResponseStreamChunk]:
        raw_usage = chunk.get("usage")
        if raw_usage is not None:
            self.usage = usage(raw_usage)
        out: list[ChatCompletionResponseStreamChunk] = []
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            content = delta.get("content")
            logprobs = chat_logprobs(choice.get("logprobs"))
            if content or logprobs:
                out.append(_progress(content or "", logprobs))
            for fragment in delta.get("tool_calls") or ():
                index = fragment.get("index", 0)
                call = self.calls.get(index)
                if call is None:
                    call = self.calls[index] = _PartialCall()
                    out.append(_progress(ToolCallDelta(content="", parse_status=ToolCallParseStatus.started)))
                if fragment.get("id"):
                    call.call_id = fragment["id"]
                function = fragment.get("function")
                if function is not None:
                    call.name += function.get("name") or ""
                    arguments = function.get("arguments")
                    if arguments:
                        call.arguments += arguments
                        in_progress = ToolCallDelta(content=arguments, parse_status=ToolCallParseStatus.in_progress)
                        out.append(_progress(in_progress))
            if choice.get("finish_reason") is not None:
                self.finish_reason = choice["finish_reason"]
        return out

    def finish(self) -> list[ChatCompletionResponseStreamChunk]:
        if self.finish_reason is None:
            raise UpstreamError(f"{self.provider_type} ended the stream before the answer was complete")
        out: list[ChatCompletionResponseStreamChunk] = []
        for index in sorted(self.calls):
            call = self.calls[index]
            arguments = parse_arguments(call.arguments)
            if arguments is None:
                delta = ToolCallDelta(
                    content=f"{call.name}({call.arguments})", parse_status=ToolCallParseStatus.failure
                )
            else:
                parsed = ToolCall(call_id=call.call_id, tool_name=call.name, arguments=arguments)
                delta = ToolCallDelta(content=parsed, parse_status=ToolCallParseStatus.success)
            out.append(_progress(delta))
        complete = ChatCompletionResponseEvent(
            event_type=ChatCompletionEventType.complete,
            delta="",
            stop_reason=stop_reason(self.finish_reason),
            usage=self.usage,
        )
        out.append(ChatCompletionResponseStreamChunk(event=complete))
        return out


class CompletionStream:
    def __init__(self, provider_type: str) -> None:
        self.provider_type = provider_type
        self.finish_reason: str | None = None
        self.usage: Usage | None = None

    def feed(self, chunk: dict[str, Any]) -> list[CompletionResponseStreamChunk]:
        raw_usage = chunk.get("usage")
        if raw_usage is not None:
            self.usage = usage(raw_usage)
        out: list[CompletionResponseStreamChunk] = []
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue
            text = choice.get("text") or ""
            if text or choice.get("logprobs") is not None:
                out.append(CompletionResponseStreamChunk(delta=text, logprobs=completion_logprobs(choice)))
            if choice.get("finish_reason") is not None:
                self.finish_reason = choice["finish_reason"]
        return out

    def finish(self) -> list[CompletionResponseStreamChunk]:
        if self.finish_reason is None:
            raise UpstreamError(f"{self.provider_type} ended the stream before the completion was complete")
        return [CompletionResponseStreamChunk(delta="", stop_reason=stop_reason(self.finish_reason), usage=self.usage)]
