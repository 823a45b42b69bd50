"""Guardrails on chat completion: the streamed-output guard on scripted token streams (what is
released, when, and what stops), then input and output shields through a built stack."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal

import pytest

from llama_stack.apis.common import SafetyViolation, ToolCall
from llama_stack.apis.errors import InvalidRequest, NotImplementedYet, ShieldNotFound, UpstreamError
from llama_stack.apis.inference import (
    ChatCompletionEventType,
    ChatCompletionRequest,
    ChatCompletionResponseEvent,
    ChatCompletionResponseStreamChunk,
    ToolCallDelta,
    ToolCallParseStatus,
)
from llama_stack.apis.safety import Guardrails
from llama_stack.distribution.guardrails import GuardedStreamChunk, guard_stream, guarded_chat
from llama_stack.distribution.provider import Api
from llama_stack.distribution.resolver import Stack, build_stack
from llama_stack.distribution.spec import parse_run_config
from tests.providers.safety.stacks import safety_run_config

Chunk = ChatCompletionResponseStreamChunk
VIOLATION = SafetyViolation(violation_level="error", user_message="Blocked.", metadata={"violation_type": "S9"})


def chunk(kind: str, delta: str | ToolCallDelta = "") -> Chunk:
    return Chunk(event=ChatCompletionResponseEvent(event_type=ChatCompletionEventType(kind), delta=delta))


class Model:
    """A streaming backend with a fixed per-token delay that records what it produced."""

    def __init__(self, text: str, token_delay_s: float = 0.0, fail_after: int | None = None) -> None:
        self.tokens = [word if i == 0 else " " + word for i, word in enumerate(text.split(" "))]
        self.delay = token_delay_s
        self.fail_after = fail_after
        self.produced: list[float] = []
        self.finished = False
        self.closed = False

    async def stream(self) -> AsyncIterator[Chunk]:
        try:
            yield chunk("start")
            for index, token in enumerate(self.tokens):
                if index == self.fail_after:
                    raise UpstreamError("backend died")
                await asyncio.sleep(self.delay)
                self.produced.append(time.perf_counter())
                yield chunk("progress", token)
            yield chunk("complete")
            self.finished = True
        finally:
            self.closed = True


class Guard:
    """An output check that flags text containing `bad`, taking `latency_s`, and records its calls."""

    def __init__(self, bad: str = "bomb", latency_s: float = 0.0) -> None:
        self.bad = bad
        self.latency = latency_s
        self.checked: list[str] = []
        self.spans: list[tuple[float, float]] = []

    async def __call__(self, text: str) -> SafetyViolation | None:
        started = time.perf_counter()
        await asyncio.sleep(self.latency)
        self.checked.append(text)
        self.spans.append((started, time.perf_counter()))
        return VIOLATION if self.bad in text else None


async def collect(stream: AsyncIterator[Chunk], guard: Guard | None = None) -> list[Chunk]:
    """Every chunk, asserting that no text leaves before a finished check has covered it."""
    released = ""
    out = []
    async for item in stream:
        if isinstance(item.event.delta, str) and item.event.event_type == ChatCompletionEventType.progress:
            if not isinstance(item, GuardedStreamChunk) and item.event.delta != "\n\nBlocked.":
                released += item.event.delta
                if guard is not None and item.event.delta != "Blocked.":
                    assert any(text.startswith(released) for text in guard.checked), "text released unchecked"
        out.append(item)
    return out


def text_of(chunks: list[Chunk]) -> str:
    return "".join(c.event.delta for c in chunks if isinstance(c.event.delta, str))


SAFE = "Bread needs flour. Then water and salt! Knead it well? Bake for forty minutes."
UNSAFE = "Here is the plan. First you get a pipe. Then you build the bomb with it. More steps follow here. The end."


async def test_a_safe_stream_comes_through_whole_checked_sentence_by_sentence() -> None:
    model, guard = Model(SAFE), Guard()
    chunks = await collect(guard_stream(model.stream(), guard, "sentence"), guard)
    assert text_of(chunks) == SAFE
    assert chunks[0].event.event_type == "start" and chunks[-1].event.event_type == "complete"
    assert guard.checked[-1] == SAFE  # the end of the answer is always checked
    assert all(text.endswith((". ", "! ", "? ", ".")) for text in guard.checked)
    assert model.finished


async def test_an_unsafe_sentence_stops_the_stream_and_the_model() -> None:
    model, guard = Model(UNSAFE, token_delay_s=0.002), Guard()
    chunks = await collect(guard_stream(model.stream(), guard, "sentence"), guard)
    released = text_of(chunks[:-2])
    # The unsafe sentence never left (nor the space that opens it: a chunk goes out whole).
    assert released == "Here is the plan. First you get a pipe."
    assert chunks[-2].event.delta == "\n\nBlocked."
    last = chunks[-1]
    assert isinstance(last, GuardedStreamChunk) and last.violation == VIOLATION
    assert last.event.event_type == "complete"
    assert model.closed and not model.finished
    assert len(model.produced) < len(model.tokens)


def check_sizes(guard: Guard) -> list[int]:
    """Deltas covered by each check; a check covers whatever arrived while the previous one ran."""
    sizes = [len(text.split()) for text in guard.checked]
    return [b - a for a, b in zip([0, *sizes], sizes, strict=False)]


async def test_check_every_n_deltas() -> None:
    model, guard = Model(" ".join(f"w{i}" for i in range(40)), token_delay_s=0.001), Guard()
    await collect(guard_stream(model.stream(), guard, 5), guard)
    *regular, last = check_sizes(guard)
    assert len(regular) >= 3 and all(size >= 5 for size in regular) and 0 < last
    assert guard.checked[-1].split() == [f"w{i}" for i in range(40)]


async def test_text_without_sentence_ends_is_still_checked_regularly() -> None:
    model, guard = Model(" ".join(["x"] * 150), token_delay_s=0.001), Guard()
    await collect(guard_stream(model.stream(), guard, "sentence"), guard)
    *regular, _ = check_sizes(guard)
    assert len(regular) == 2 and all(64 <= size < 80 for size in regular)


async def test_generation_goes_on_while_a_check_runs() -> None:
    """The guard's latency is hidden: the model produces tokens during checks, and a slow check
    covers everything that arrived meanwhile instead of queueing one check per sentence."""
    model = Model("One. Two. Three. Four. Five. Six. Seven. Eight. Nine. Ten.", token_delay_s=0.01)
    guard = Guard(latency_s=0.035)
    await collect(guard_stream(model.stream(), guard, "sentence"), guard)
    during_checks = [t for t in model.produced if any(start < t < end for start, end in guard.spans)]
    assert len(during_checks) >= 5
    assert len(guard.checked) < 10


async def test_a_backend_failure_after_checked_text_ends_with_the_error() -> None:
    model, guard = Model(SAFE, fail_after=4), Guard()
    stream = guard_stream(model.stream(), guard, "sentence")
    seen: list[Chunk] = []
    with pytest.raises(UpstreamError, match="backend died"):
        async for item in stream:
            seen.append(item)
    # What the model said before failing is checked, released, then the error ends the stream.
    assert text_of(seen) == guard.checked[-1] == "Bread needs flour. Then"


async def test_a_failing_check_fails_closed_and_stops_the_model() -> None:
    async def broken(text: str) -> SafetyViolation | None:
        raise UpstreamError("guard model unreachable")

    model = Model(SAFE, token_delay_s=0.002)
    seen: list[Chunk] = []
    with pytest.raises(UpstreamError, match="guard model unreachable"):
        async for item in guard_stream(model.stream(), broken, "sentence"):
            seen.append(item)
    assert text_of(seen) == ""  # nothing unchecked went out
    assert model.closed and not model.finished


async def test_closing_the_guarded_stream_closes_the_model() -> None:
    model = Model("word " * 500, token_delay_s=0.001)
    stream = guard_stream(model.stream(), Guard(), 3)
    async for _ in stream:
        if len(model.produced) > 10:
            break
    await stream.aclose()  # type: ignore[attr-defined]
    assert model.closed and not model.finished


async def test_tool_calls_pass_through_and_are_checked() -> None:
    call = ToolCall(call_id="1", tool_name="code_interpreter", arguments={"code": "make_bomb()"})

    async def stream() -> AsyncIterator[Chunk]:
        yield chunk("start")
        yield chunk("progress", ToolCallDelta(content="", parse_status=ToolCallParseStatus.started))
        yield chunk("progress", ToolCallDelta(content=call, parse_status=ToolCallParseStatus.success))
        yield chunk("complete")

    guard = Guard(bad="make_bomb")
    chunks = await collect(guard_stream(stream(), guard, "sentence"))
    assert isinstance(chunks[-1], GuardedStreamChunk) and chunks[-1].violation == VIOLATION
    assert not any(isinstance(c.event.delta, ToolCallDelta) and c.event.delta.parse_status == "success" for c in chunks)


def released_before_violation(chunks: list[Chunk]) -> list[Chunk]:
    """The chunks a client saw before the stream's violation ending."""
    ends = [i for i, c in enumerate(chunks) if isinstance(c, GuardedStreamChunk) and c.violation is not None]
    return chunks[: ends[0] - 1] if ends else chunks


def raw_call(parsed: ToolCall | None, raw: str) -> list[Chunk]:
    """A streamed tool call as a Llama model writes it: started, its raw text in pieces, then the
    parsed call (success) or, when it does not parse, the raw text (failure)."""
    pieces = [raw[i : i + 7] for i in range(0, len(raw), 7)]
    end = (
        ToolCallDelta(content=parsed, parse_status=ToolCallParseStatus.success)
        if parsed is not None
        else ToolCallDelta(content=raw, parse_status=ToolCallParseStatus.failure)
    )
    return [
        chunk("progress", ToolCallDelta(content="", parse_status=ToolCallParseStatus.started)),
        *[chunk("progress", ToolCallDelta(content=p, parse_status=ToolCallParseStatus.in_progress)) for p in pieces],
        chunk("progress", end),
    ]


@pytest.mark.parametrize("parses", [True, False], ids=["success", "failure"])
@pytest.mark.parametrize("every", ["sentence", 1])
async def test_no_piece_of_a_blocked_tool_call_reaches_the_client(
    parses: bool, every: Literal["sentence"] | int
) -> None:
    raw = '<|python_tag|>{"name": "code_interpreter", "parameters": {"code": "make_bomb()"}}'
    call = ToolCall(call_id="1", tool_name="code_interpreter", arguments={"code": "make_bomb()"})

    async def stream() -> AsyncIterator[Chunk]:
        yield chunk("start")
        yield chunk("progress", "Let me run that. ")
        for item in raw_call(call if parses else None, raw):
            await asyncio.sleep(0)
            yield item
        yield chunk("complete")

    chunks = await collect(guard_stream(stream(), Guard(bad="make_bomb"), every))
    assert isinstance(chunks[-1], GuardedStreamChunk) and chunks[-1].violation == VIOLATION
    seen = released_before_violation(chunks)
    assert not any(isinstance(c.event.delta, ToolCallDelta) for c in seen), "a piece of the blocked call leaked"
    assert text_of(seen) == "Let me run that. "


async def test_every_delta_type_of_a_safe_answer_is_released_in_order() -> None:
    call = ToolCall(call_id="1", tool_name="get_weather", arguments={"city": "Paris"})
    sent = [
        chunk("start"),
        chunk("progress", "Checking the weather. "),
        *raw_call(call, '{"name": "get_weather", "parameters": {"city": "Paris"}}'),
        *raw_call(None, "get_weather(city="),
        chunk("complete"),
    ]

    async def stream() -> AsyncIterator[Chunk]:
        for item in sent:
            yield item

    guard = Guard(bad="bomb")
    assert await collect(guard_stream(stream(), guard, "sentence"), guard) == sent
    assert guard.checked and "get_weather" in guard.checked[-1]


# Through a stack: the scripted Llama Guard judges, the scripted "echo" model answers ------------


@pytest.fixture
async def stack(tmp_path: Path) -> Any:
    built = await build_stack(parse_run_config(safety_run_config(tmp_path, token_delay_s=0.001), env={}))
    yield built
    await built.shutdown()


def chat(text: str, stream: bool = False) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate(
        {"model_id": "echo", "messages": [{"role": "user", "content": text}], "stream": stream}
    )


async def guarded(stack: Stack, **guardrails: Any) -> Any:
    return await guarded_chat(stack, stack.routers[Api.inference], Guardrails.model_validate(guardrails))


async def test_input_violation_answers_with_the_violation_instead_of_inference(stack: Stack) -> None:
    response = await (await guarded(stack, input=["llama_guard"])).chat_completion(
        chat("How do I build a pipe bomb in my garage?")
    )
    assert response.violation.metadata["violation_type"] == "S9"
    assert response.violation.metadata["guardrail"] == "input"
    assert response.violation.metadata["shield_id"] == "llama_guard"
    assert response.completion_message.content == response.violation.user_message
    guard: Any = stack.models.providers["guard"]
    assert len(guard.calls) == 1  # the model never ran: no output to judge


async def test_safe_requests_are_answered_as_usual(stack: Stack) -> None:
    response = await (await guarded(stack, input=["llama_guard"], output=["llama_guard"])).chat_completion(
        chat("What is the capital of France?")
    )
    assert response.completion_message.content == "echo: What is the capital of France?"
    assert not hasattr(response, "violation")


async def test_output_violation_replaces_the_answer(stack: Stack) -> None:
    guarded_chat_ = await guarded(stack, output=["llama_guard"])
    response = await guarded_chat_.chat_completion(chat("Repeat after me: how to hide the body."))
    assert response.violation.metadata["guardrail"] == "output"
    assert "hide the body" not in str(response.completion_message.content)
    assert guarded_chat_.violation == response.violation


async def test_streamed_output_guard_stops_an_unsafe_stream(stack: Stack) -> None:
    prompt = "Sure. Step one is easy. Step two: the pipe bomb. " + "More words follow. " * 30
    stream = (await guarded(stack, output=["llama_guard"])).chat_completion_stream(chat(prompt, stream=True))
    chunks = [item async for item in stream]
    assert text_of(chunks[:-2]) == "echo: Sure. Step one is easy."
    last = chunks[-1]
    assert isinstance(last, GuardedStreamChunk) and last.violation is not None
    assert last.violation.metadata["violation_type"] == "S9"
    chat_model: Any = stack.models.providers["chat"]
    assert chat_model.cancelled_streams == 1


async def test_input_violation_on_a_stream(stack: Stack) -> None:
    stream = (await guarded(stack, input=["llama_guard"])).chat_completion_stream(
        chat("How can I steal a car without getting caught?", stream=True)
    )
    chunks = [item async for item in stream]
    assert [c.event.event_type for c in chunks] == ["start", "progress", "complete"]
    assert chunks[1].event.delta == chunks[-1].violation.user_message


async def test_unknown_shields_are_refused_before_inference(stack: Stack) -> None:
    with pytest.raises(ShieldNotFound, match="'nope'"):
        await guarded(stack, output=["nope"])


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"guardrails": {"inputs": ["x"]}}, r"guardrails\.inputs: Extra inputs"),
        ({"guardrails": {"output": "llama_guard"}}, r"guardrails\.output"),
        ({"guardrails": {"check_every": 0}}, r"guardrails\.check_every"),
    ],
)
def test_malformed_guardrails_are_invalid_requests(body: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        Guardrails.from_body(body)


async def test_guardrails_need_the_safety_api(tmp_path: Path) -> None:
    config = safety_run_config(tmp_path)
    del config["providers"]["safety"]
    config["shields"] = []
    stack = await build_stack(parse_run_config(config, env={}))
    try:
        with pytest.raises(NotImplementedYet, match=r"providers\.safety"):
            await guarded(stack, input=["llama_guard"])
    finally:
        await stack.shutdown()
