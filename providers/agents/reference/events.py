"""The v0.0.63 turn event stream: turn_start, then per step step_start / step_progress* /
step_complete, then turn_complete carrying the whole Turn. The official client's EventLogger and
Agent helper parse exactly these payloads."""

from __future__ import annotations

from datetime import UTC, datetime

from llama_stack.apis.agents import (
    Step,
    StepCompletePayload,
    StepProgressPayload,
    StepStartPayload,
    StepType,
    Turn,
    TurnCompletePayload,
    TurnEvent,
    TurnEventPayload,
    TurnStartPayload,
    TurnStreamChunk,
)
from llama_stack.apis.common import ToolCall
from llama_stack.apis.inference import ToolCallDelta, ToolCallParseStatus


def now() -> datetime:
    return datetime.now(UTC)


def _chunk(payload: TurnEventPayload) -> TurnStreamChunk:
    return TurnStreamChunk(event=TurnEvent(payload=payload))


def turn_start(turn_id: str) -> TurnStreamChunk:
    return _chunk(TurnStartPayload(turn_id=turn_id))


def turn_complete(turn: Turn) -> TurnStreamChunk:
    return _chunk(TurnCompletePayload(turn=turn))


def step_start(step_type: StepType, step_id: str, metadata: dict[str, object] | None = None) -> TurnStreamChunk:
    return _chunk(StepStartPayload(step_type=step_type, step_id=step_id, metadata=metadata))


def text_progress(step_id: str, text: str) -> TurnStreamChunk:
    return _chunk(StepProgressPayload(step_type=StepType.inference, step_id=step_id, text_delta=text))


def tool_call_progress(step_type: StepType, step_id: str, delta: ToolCallDelta) -> TurnStreamChunk:
    return _chunk(StepProgressPayload(step_type=step_type, step_id=step_id, tool_call_delta=delta))


def tool_call_running(step_id: str, call: ToolCall) -> TurnStreamChunk:
    delta = ToolCallDelta(content=call, parse_status=ToolCallParseStatus.success)
    return tool_call_progress(StepType.tool_execution, step_id, delta)


def step_complete(step: Step) -> TurnStreamChunk:
    return _chunk(StepCompletePayload(step_type=StepType(step.step_type), step_details=step))
