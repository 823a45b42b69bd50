"""Generated tokens turned into API results: text, tool calls, logprobs and usage.

The engine's events arrive as `Step`s (a token's text, its top logprobs, or the finish). A
stream is assembled chunk by chunk; a whole response is assembled from the same steps, so both
agree on content, tool calls and stop reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from llama_stack.apis.common import CompletionMessage, StopReason, ToolPromptFormat
from llama_stack.apis.inference import (
    ChatCompletionEventType,
    ChatCompletionResponse,
    ChatCompletionResponseEvent,
    ChatCompletionResponseStreamChunk,
    CompletionResponse,
    CompletionResponseStreamChunk,
    TokenLogProbs,
    ToolCallDelta,
    Usage,
)
from llama_stack.models.tool_calls import ToolCallStreamParser, parse_assistant_output


@dataclass(frozen=True)
class Step:
    """One engine event as text: a token's text (maybe "" while a character is incomplete) and
    its logprobs, or the end of generation with its stop reason and token counts."""

    text: str
    logprobs: TokenLogProbs | None = None
    stop_reason: StopReason | None = None
    usage: Usage | None = None


def token_logprobs(top: tuple[tuple[int, float], ...], token_text: Callable[[int], str]) -> TokenLogProbs:
    """{decoded token: logprob}; tokens that decode alike keep the higher logprob (the first)."""
    by_token: dict[str, float] = {}
    for token_id, logprob in top:
        by_token.setdefault(token_text(token_id), logprob)
    return TokenLogProbs(logprobs_by_token=by_token)


def _chunk(
    kind: ChatCompletionEventType,
    delta: str | ToolCallDelta,
    logprobs: list[TokenLogProbs] | None = None,
    stop_reason: StopReason | None = None,
    usage: Usage | None = None,
) -> ChatCompletionResponseStreamChunk:
    event = ChatCompletionResponseEvent(
        event_type=kind, delta=delta, logprobs=logprobs or None, stop_reason=stop_reason, usage=usage
    )
    return ChatCompletionResponseStreamChunk(event=event)


@dataclass
class ChatStreamAssembler:
    """Steps in, chat stream chunks out: text deltas, tool-call deltas (when the request offered
    tools), then the `complete` event with the stop reason and usage. Logprobs ride on the next
    chunk sent after their token, so every token's logprobs arrive, in order."""

    parse_tools: bool
    parser: ToolCallStreamParser = field(default_factory=ToolCallStreamParser)
    _logprobs: list[TokenLogProbs] = field(default_factory=list)

    def start(self) -> ChatCompletionResponseStreamChunk:
        return _chunk(ChatCompletionEventType.start, "")

    def feed(self, step: Step) -> list[ChatCompletionResponseStreamChunk]:
        if step.logprobs is not None:
            self._logprobs.append(step.logprobs)
        deltas: list[str | ToolCallDelta] = []
        if self.parse_tools:
            deltas += self.parser.feed(step.text)
            if step.stop_reason is not None:
                deltas += self.parser.finish()
        elif step.text:
            deltas.append(step.text)
        chunks = [_chunk(ChatCompletionEventType.progress, delta, self._take_logprobs()) for delta in deltas]
        if step.stop_reason is not None:
            chunks.append(
                _chunk(ChatCompletionEventType.complete, "", self._take_logprobs(), step.stop_reason, step.usage)
            )
        return chunks

    def _take_logprobs(self) -> list[TokenLogProbs]:
        taken, self._logprobs = self._logprobs, []
        return taken


@dataclass
class Collected:
    """Every step of a generation, gathered for a non-streaming response."""

    text: str = ""
    logprobs: list[TokenLogProbs] = field(default_factory=list)
    stop_reason: StopReason = StopReason.out_of_tokens
    usage: Usage | None = None
    wants_logprobs: bool = False

    def add(self, step: Step) -> None:
        self.text += step.text
        if step.logprobs is not None:
            self.logprobs.append(step.logprobs)
        if step.stop_reason is not None:
            self.stop_reason = step.stop_reason
            self.usage = step.usage

    def chat_response(self, parse_tools: bool, fmt: ToolPromptFormat | None) -> ChatCompletionResponse:
        if parse_tools:
            message = parse_assistant_output(self.text, self.stop_reason, fmt)
        else:
            message = CompletionMessage(content=self.text, stop_reason=self.stop_reason)
        return ChatCompletionResponse(completion_message=message, logprobs=self._logprobs_or_none(), usage=self.usage)

    def completion_response(self) -> CompletionResponse:
        return CompletionResponse(
            content=self.text, stop_reason=self.stop_reason, logprobs=self._logprobs_or_none(), usage=self.usage
        )

    def _logprobs_or_none(self) -> list[TokenLogProbs] | None:
        return self.logprobs if self.wants_logprobs else None


@dataclass
class CompletionStreamAssembler:
    """Steps in, completion chunks out; the last chunk has the stop reason and usage."""

    _logprobs: list[TokenLogProbs] = field(default_factory=list)

    def feed(self, step: Step) -> list[CompletionResponseStreamChunk]:
        if step.logprobs is not None:
            self._logprobs.append(step.logprobs)
        if not step.text and step.stop_reason is None:
            return []
        logprobs, self._logprobs = self._logprobs, []
        return [
            CompletionResponseStreamChunk(
                delta=step.text, stop_reason=step.stop_reason, logprobs=logprobs or None, usage=step.usage
            )
        ]
