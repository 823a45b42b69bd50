"""EventLogger: prints an agent turn as it streams.

    EventLogger().print(agent.create_turn("Hello", session_id))

Each step gets a line headed by its kind: `inference>` with the text as it arrives, the tool
calls the model makes, `tool_execution>` for builtin tools, `client_tool>` for the results of
client tools, `shield_call>` for shield verdicts and `memory_retrieval>` for RAG. Colour is used
when the output is a terminal and NO_COLOR is not set; `color=True/False` decides explicitly."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TextIO

from llama_stack.apis.agents import (
    InferenceStep,
    MemoryRetrievalStep,
    ShieldCallStep,
    StepCompletePayload,
    StepProgressPayload,
    ToolExecutionStep,
    TurnStreamChunk,
)
from llama_stack.apis.common import ToolCall, ToolResponseMessage, content_text

ANSI = {
    "red": "\033[31m",
    "green": "\033[32m",
    "yellow": "\033[33m",
    "magenta": "\033[35m",
    "cyan": "\033[36m",
}
RESET = "\033[0m"


@dataclass(frozen=True)
class LogEvent:
    role: str | None
    content: str
    color: str | None = None
    end: str = "\n"

    def render(self, color: bool) -> str:
        text = f"{self.role}> {self.content}" if self.role is not None else self.content
        if color and self.color in ANSI and text:
            text = f"{ANSI[self.color]}{text}{RESET}"
        return text + self.end


def wants_color(stream: TextIO) -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _progress_text(payload: StepProgressPayload) -> str:
    """Text the model is writing: its reply, or a tool call being parsed."""
    delta = payload.tool_call_delta
    if delta is not None:
        return delta.content if isinstance(delta.content, str) else ""
    return payload.text_delta or ""


def _call_text(call: ToolCall) -> str:
    return f"{call.tool_name}({json.dumps(call.arguments)})"


class EventLogger:
    def __init__(self, file: TextIO | None = None, color: bool | None = None) -> None:
        self.file = file
        self.color = color

    def log(self, events: Iterable[TurnStreamChunk | ToolResponseMessage]) -> Iterator[LogEvent]:
        """The lines to show for each event, as the events arrive."""
        line_open = False  # an `inference>` line is being written, delta by delta
        for event in events:
            if isinstance(event, ToolResponseMessage):
                yield LogEvent("client_tool", f"{event.tool_name} -> {content_text(event.content)}", "green")
                continue
            payload = event.event.payload
            if isinstance(payload, StepProgressPayload):
                text = _progress_text(payload)
                if text:
                    yield LogEvent(None if line_open else "inference", text, "yellow", end="")
                    line_open = True
            elif isinstance(payload, StepCompletePayload):
                if line_open:
                    yield LogEvent(None, "")
                    line_open = False
                yield from self._completed(payload)

    def print(self, events: Iterable[TurnStreamChunk | ToolResponseMessage]) -> None:
        file = self.file or sys.stdout
        color = self.color if self.color is not None else wants_color(file)
        for line in self.log(events):
            file.write(line.render(color))
            file.flush()

    def _completed(self, payload: StepCompletePayload) -> Iterator[LogEvent]:
        step = payload.step_details
        if isinstance(step, InferenceStep):
            for call in step.model_response.tool_calls:
                yield LogEvent("tool_call", _call_text(call), "cyan")
        elif isinstance(step, ToolExecutionStep):
            for call in step.tool_calls:
                yield LogEvent("tool_execution", _call_text(call), "green")
            for response in step.tool_responses:
                yield LogEvent("tool_execution", f"{response.tool_name} -> {content_text(response.content)}", "green")
        elif isinstance(step, ShieldCallStep):
            violation = step.violation
            if violation is None:
                yield LogEvent("shield_call", "no violation", "magenta")
            else:
                message = violation.user_message or "(no message)"
                yield LogEvent("shield_call", f"{violation.violation_level}: {message}", "red")
        elif isinstance(step, MemoryRetrievalStep):
            context = content_text(step.inserted_context)
            banks = ", ".join(step.memory_bank_ids)
            yield LogEvent("memory_retrieval", f"fetched {len(context)} characters from {banks}", "cyan")
