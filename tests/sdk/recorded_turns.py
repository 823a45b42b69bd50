"""Agent turns as a Llama Stack v0.0.63 server streams them (`data: <json>` frames, no [DONE]),
for testing the Agent helper and the EventLogger without an agents provider.

WEATHER_CALL: input shield passes, the model streams a get_weather tool call and ends the turn
(stop_reason end_of_message) for the client to run it.
WEATHER_ANSWER: the next turn, after the tool result came back as role ipython.
RAG_WITH_SEARCH: memory retrieval, a builtin brave_search call run by the server, an answer,
and an output shield that flags it."""

from __future__ import annotations

import json
from typing import Any

T0 = "2024-12-18T10:00:00.000000"
T1 = "2024-12-18T10:00:01.500000"


def _event(payload: dict[str, Any]) -> dict[str, Any]:
    return {"event": {"payload": payload}}


def sse(events: list[dict[str, Any]]) -> bytes:
    return b"".join(b"data: " + json.dumps(event).encode() + b"\n\n" for event in events)


def _shield(turn_id: str, step_id: str, violation: dict[str, Any] | None) -> list[dict[str, Any]]:
    details = {"turn_id": turn_id, "step_id": step_id, "step_type": "shield_call", "violation": violation}
    return [
        _event({"event_type": "step_start", "step_type": "shield_call", "step_id": step_id, "metadata": {}}),
        _event({"event_type": "step_complete", "step_type": "shield_call", "step_details": {**details}}),
    ]


def _progress(step_id: str, **delta: Any) -> dict[str, Any]:
    return _event({"event_type": "step_progress", "step_type": "inference", "step_id": step_id, **delta})


def _inference(turn_id: str, step_id: str, message: dict[str, Any], deltas: list[dict[str, Any]]) -> list[Any]:
    details = {
        "turn_id": turn_id,
        "step_id": step_id,
        "step_type": "inference",
        "model_response": message,
        "started_at": T0,
        "completed_at": T1,
    }
    return [
        _event({"event_type": "step_start", "step_type": "inference", "step_id": step_id, "metadata": {}}),
        *deltas,
        _event({"event_type": "step_complete", "step_type": "inference", "step_details": details}),
    ]


def _turn(turn_id: str, inputs: list[Any], steps: list[Any], output: dict[str, Any]) -> dict[str, Any]:
    turn = {
        "turn_id": turn_id,
        "session_id": "sess-1",
        "input_messages": inputs,
        "steps": [s["event"]["payload"]["step_details"] for s in steps if "step_details" in s["event"]["payload"]],
        "output_message": output,
        "output_attachments": [],
        "started_at": T0,
        "completed_at": T1,
    }
    return _event({"event_type": "turn_complete", "turn": turn})


def weather_call(call_id: str = "call-7", tool_name: str = "get_weather", **arguments: Any) -> list[dict[str, Any]]:
    arguments = arguments or {"city": "Paris"}
    call = {"call_id": call_id, "tool_name": tool_name, "arguments": arguments}
    text = json.dumps({"type": "function", "name": tool_name, "parameters": arguments})
    message = {"role": "assistant", "content": "", "stop_reason": "end_of_message", "tool_calls": [call]}
    steps = _shield("turn-1", "step-s1", None) + _inference(
        "turn-1",
        "step-i1",
        message,
        [
            _progress("step-i1", text_delta="", tool_call_delta={"content": "", "parse_status": "started"}),
            _progress("step-i1", text_delta="", tool_call_delta={"content": text, "parse_status": "in_progress"}),
            _progress("step-i1", text_delta="", tool_call_delta={"content": call, "parse_status": "success"}),
        ],
    )
    inputs = [{"role": "user", "content": "What is the weather in Paris?", "context": None}]
    return [_event({"event_type": "turn_start", "turn_id": "turn-1"}), *steps, _turn("turn-1", inputs, steps, message)]


def answer(text: str = "It is 18°C and sunny in Paris.") -> list[dict[str, Any]]:
    message = {"role": "assistant", "content": text, "stop_reason": "end_of_turn", "tool_calls": []}
    words = text.split(" ")
    deltas = [_progress("step-i2", text_delta=w if i == 0 else " " + w) for i, w in enumerate(words)]
    steps = _inference("turn-2", "step-i2", message, deltas) + _shield("turn-2", "step-s2", None)
    inputs = [{"role": "ipython", "call_id": "call-7", "tool_name": "get_weather", "content": "18°C and sunny"}]
    return [_event({"event_type": "turn_start", "turn_id": "turn-2"}), *steps, _turn("turn-2", inputs, steps, message)]


def rag_with_search() -> list[dict[str, Any]]:
    memory = {
        "turn_id": "turn-3",
        "step_id": "step-m",
        "step_type": "memory_retrieval",
        "memory_bank_ids": ["travel-docs"],
        "inserted_context": [
            {"type": "text", "text": "Paris is the capital of France."},
            {"type": "text", "text": "It has 20 arrondissements."},
        ],
    }
    search_call = {"call_id": "call-s", "tool_name": "brave_search", "arguments": {"query": "Paris mayor"}}
    tools = {
        "turn_id": "turn-3",
        "step_id": "step-t",
        "step_type": "tool_execution",
        "tool_calls": [search_call],
        "tool_responses": [{"call_id": "call-s", "tool_name": "brave_search", "content": "Anne Hidalgo"}],
    }
    call_message = {"role": "assistant", "content": "", "stop_reason": "end_of_message", "tool_calls": [search_call]}
    final = {"role": "assistant", "content": "Anne Hidalgo.", "stop_reason": "end_of_turn", "tool_calls": []}
    violation = {"violation_level": "error", "user_message": "I can't answer that.", "metadata": {"code": "S1"}}
    steps = [
        _event({"event_type": "step_start", "step_type": "memory_retrieval", "step_id": "step-m"}),
        _event({"event_type": "step_complete", "step_type": "memory_retrieval", "step_details": memory}),
        *_inference("turn-3", "step-i3", call_message, []),
        _event({"event_type": "step_start", "step_type": "tool_execution", "step_id": "step-t"}),
        _event({"event_type": "step_complete", "step_type": "tool_execution", "step_details": tools}),
        *_inference("turn-3", "step-i4", final, [_progress("step-i4", text_delta="Anne Hidalgo.")]),
        *_shield("turn-3", "step-s3", violation),
    ]
    inputs = [{"role": "user", "content": "Who is the mayor of Paris?"}]
    return [_event({"event_type": "turn_start", "turn_id": "turn-3"}), *steps, _turn("turn-3", inputs, steps, final)]


def final_turn(events: list[dict[str, Any]]) -> dict[str, Any]:
    """The Turn a non-streaming turn/create answers with: the turn_complete payload's turn."""
    turn: dict[str, Any] = events[-1]["event"]["payload"]["turn"]
    return turn
