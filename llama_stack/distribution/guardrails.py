"""Guardrails on chat completion: input shields run before inference, output shields on the answer.

A request asks for them with a `guardrails` body field (apis/safety.py), the same on both faces:
`{"input": [shield ids], "output": [shield ids], "check_every": "sentence" | N}`.

A violation (level "error"; warn / info verdicts never block) never becomes an HTTP error: the
answer is the shield's `user_message` and carries the violation. A streamed answer is checked as
it grows, every sentence or every N deltas. Text is released to the client only once a check has
passed it (a tool call's pieces only once the whole call has), while generation goes on behind
the check, so the guard's latency is hidden behind generation rather than added per chunk. On a
violation the provider's iterator is closed (the model stops) and the stream ends with the
user_message and a violation event.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from bisect import bisect_right
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, Literal

from llama_stack.apis.common import CompletionMessage, Message, SafetyViolation, StopReason
from llama_stack.apis.inference import (
    ChatCompletionEventType,
    ChatCompletionRequest,
    ChatCompletionResponse,
    ChatCompletionResponseEvent,
    ChatCompletionResponseStreamChunk,
    Inference,
    ToolCallParseStatus,
)
from llama_stack.apis.safety import Guardrails, RunShieldRequest, Safety
from llama_stack.distribution.provider import Api
from llama_stack.distribution.routers import relay

if TYPE_CHECKING:
    from llama_stack.distribution.resolver import Stack

Chunk = ChatCompletionResponseStreamChunk
Check = Callable[[str], Awaitable[SafetyViolation | None]]

# . ! ? and the ellipsis, the CJK full stop and full-width ! ?, then closing quotes or brackets.
SENTENCE_END = re.compile("[.!?\u2026\u3002\uff01\uff1f][\"'\u201d\u2019)\\]]*\\s|\n")
# In sentence mode, text without a sentence end (code, lists) is still checked this often.
MAX_HELD_DELTAS = 64


class GuardedChatCompletionResponse(ChatCompletionResponse):
    violation: SafetyViolation | None = None


class GuardedStreamChunk(ChatCompletionResponseStreamChunk):
    violation: SafetyViolation | None = None


async def guarded_chat(stack: Stack, inference: Inference, guardrails: Guardrails) -> GuardedChat:
    """Chat completion with the request's guardrails. A face calls it only for a request that names
    some: one without calls the inference router as is, with no layer added to the call or to each
    streamed chunk. Every shield named is looked up first, so an unknown one is a 404 before any
    inference."""
    safety = stack.routers[Api.safety]  # a stack without the Safety API says so first
    for shield_id in dict.fromkeys(guardrails.input + guardrails.output):
        await stack.shields.get(shield_id)
    return GuardedChat(inference, safety, guardrails)


class GuardedChat:
    """The inference router's chat methods with the guardrails around them, called as the router
    is. One per request: `violation` tells the face whether a shield stopped this answer."""

    def __init__(self, inference: Inference, safety: Safety, guardrails: Guardrails) -> None:
        self.inference = inference
        self.safety = safety
        self.guardrails = guardrails
        self.violation: SafetyViolation | None = None

    async def check(self, stage: str, shield_ids: list[str], messages: list[Message]) -> SafetyViolation | None:
        """Run the shields side by side; the first blocking violation, in the order asked, wins."""
        if not shield_ids:
            return None
        safety = self.safety
        tasks = [
            asyncio.ensure_future(safety.run_shield(RunShieldRequest(shield_id=shield_id, messages=messages)))
            for shield_id in shield_ids
        ]
        try:
            responses = await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
        for shield_id, response in zip(shield_ids, responses, strict=True):
            violation = response.violation
            if violation is not None and violation.violation_level == "error":
                metadata = {**violation.metadata, "shield_id": shield_id, "guardrail": stage}
                self.violation = violation.model_copy(update={"metadata": metadata})
                return self.violation
        return None

    async def check_output(self, request: ChatCompletionRequest, answer: CompletionMessage) -> SafetyViolation | None:
        return await self.check("output", self.guardrails.output, [*request.messages, answer])

    async def chat_completion(self, request: ChatCompletionRequest) -> ChatCompletionResponse:
        violation = await self.check("input", self.guardrails.input, request.messages)
        if violation is not None:
            return _refusal(violation)
        response = await self.inference.chat_completion(request)
        violation = await self.check_output(request, response.completion_message)
        return _refusal(violation) if violation is not None else response

    def chat_completion_stream(self, request: ChatCompletionRequest) -> AsyncIterator[Chunk]:
        return relay(self._open_stream(request))

    async def _open_stream(self, request: ChatCompletionRequest) -> AsyncIterator[Chunk]:
        violation = await self.check("input", self.guardrails.input, request.messages)
        if violation is not None:
            return _refusal_stream(violation)
        chunks = self.inference.chat_completion_stream(request)
        if not self.guardrails.output:
            return chunks

        async def check(text: str) -> SafetyViolation | None:
            return await self.check_output(request, CompletionMessage(content=text))

        return guard_stream(chunks, check, self.guardrails.check_every)


def _refusal(violation: SafetyViolation) -> GuardedChatCompletionResponse:
    message = CompletionMessage(content=violation.user_message or "", stop_reason=StopReason.end_of_turn)
    return GuardedChatCompletionResponse(completion_message=message, violation=violation)


def _event(kind: ChatCompletionEventType, delta: str, stop: StopReason | None = None) -> ChatCompletionResponseEvent:
    return ChatCompletionResponseEvent(event_type=kind, delta=delta, stop_reason=stop)


def _violation_end(violation: SafetyViolation, after_text: bool) -> list[Chunk]:
    text = violation.user_message or ""
    return [
        Chunk(event=_event(ChatCompletionEventType.progress, f"\n\n{text}" if after_text and text else text)),
        GuardedStreamChunk(
            event=_event(ChatCompletionEventType.complete, "", StopReason.end_of_turn), violation=violation
        ),
    ]


async def _refusal_stream(violation: SafetyViolation) -> AsyncIterator[Chunk]:
    yield Chunk(event=_event(ChatCompletionEventType.start, ""))
    for chunk in _violation_end(violation, after_text=False):
        yield chunk


def _text_of(chunk: Chunk) -> str:
    """What a chunk adds to the text the output shields judge."""
    delta = chunk.event.delta
    if isinstance(delta, str):
        return delta
    if delta.parse_status == ToolCallParseStatus.success and not isinstance(delta.content, str):
        return "\n" + json.dumps({"name": delta.content.tool_name, "parameters": delta.content.arguments})
    if delta.parse_status == ToolCallParseStatus.failure and isinstance(delta.content, str):
        return delta.content
    return ""


# What a started / in-progress tool-call piece waits for: the end of its call (success or failure),
# whose delta carries the call the shields judge; its raw text (`<|python_tag|>...`) never leaves first.
UNTIL_CALL_ENDS = sys.maxsize


def _is_call_piece(chunk: Chunk) -> bool:
    delta = chunk.event.delta
    return not isinstance(delta, str) and delta.parse_status in (
        ToolCallParseStatus.started,
        ToolCallParseStatus.in_progress,
    )


class _Pump:
    """Pulls the provider's stream in its own task, so generation goes on while a check runs."""

    def __init__(self, chunks: AsyncIterator[Chunk]) -> None:
        self.chunks = chunks
        self.items: list[Chunk] = []
        self.done = False
        self.error: BaseException | None = None
        self.changed = asyncio.Event()
        self.task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        try:
            async for chunk in self.chunks:
                self.items.append(chunk)
                self.changed.set()
        except Exception as error:
            self.error = error
        finally:
            self.done = True
            self.changed.set()

    async def close(self) -> None:
        """Stop generation: cancelling the task raises inside the provider's generator."""
        if not self.task.done():
            self.task.cancel()
            await asyncio.wait([self.task])
        aclose = getattr(self.chunks, "aclose", None)
        if aclose is not None:
            await aclose()


def _boundary(text: str, start: int, pending_deltas: int, every: Literal["sentence"] | int) -> int | None:
    """Where the next check should end, if the unchecked text (from `start`) is due for one."""
    if every == "sentence":
        ends = [match.end() for match in SENTENCE_END.finditer(text, start)]
        if ends:
            return ends[-1]
        return len(text) if pending_deltas >= MAX_HELD_DELTAS else None
    return len(text) if pending_deltas >= every else None


async def guard_stream(
    chunks: AsyncIterator[Chunk], check: Check, every: Literal["sentence"] | int
) -> AsyncIterator[Chunk]:
    """Release the provider's chunks as output checks pass them. One check runs at a time and
    covers all the text up to its boundary; text arriving meanwhile waits for the next check."""
    pump = _Pump(chunks)
    text = ""
    held: list[tuple[Chunk, int]] = []  # chunks not yet released, with the text length they need checked
    text_ends: list[int] = []  # text length after each text delta, to count deltas since a check
    absorbed = checked = submitted = 0
    checking: asyncio.Future[SafetyViolation | None] | None = None
    released_text = False
    try:
        while True:
            pump.changed.clear()
            finished = pump.done  # read before absorbing: chunks may arrive while we yield
            for chunk in pump.items[absorbed:]:
                added = _text_of(chunk)
                text += added
                if added:
                    text_ends.append(len(text))
                if _is_call_piece(chunk):
                    held.append((chunk, UNTIL_CALL_ENDS))  # its raw text is judged with the whole call
                    continue
                if not isinstance(chunk.event.delta, str):  # the call ended: its pieces wait for its check
                    held = [(c, len(text) if need == UNTIL_CALL_ENDS else need) for c, need in held]
                held.append((chunk, len(text)))
            absorbed = len(pump.items)
            if finished:  # a call the stream never finished: its pieces wait for the end's check
                held = [(c, len(text) if need == UNTIL_CALL_ENDS else need) for c, need in held]
            while held and held[0][1] <= checked:
                chunk = held.pop(0)[0]
                released_text = released_text or bool(_text_of(chunk))
                yield chunk
            if checking is None:
                pending = len(text_ends) - bisect_right(text_ends, submitted)
                upto = _boundary(text, submitted, pending, every)
                if finished and submitted < len(text):
                    upto = len(text)  # the end of the answer is always checked
                if upto is not None and upto > submitted:
                    checking, submitted = asyncio.ensure_future(check(text[:upto])), upto
                elif finished:  # all text checked, so every held chunk went out above
                    if pump.error is not None:
                        raise pump.error
                    return
            waiting: list[asyncio.Future[Any]] = [asyncio.ensure_future(pump.changed.wait())]
            if checking is not None:
                waiting.append(checking)
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            waiting[0].cancel()
            if checking is not None and checking.done():
                violation, checking = checking.result(), None
                if violation is not None:
                    await pump.close()
                    for chunk in _violation_end(violation, released_text):
                        yield chunk
                    return
                checked = submitted
    finally:
        if checking is not None:
            checking.cancel()
        await pump.close()
