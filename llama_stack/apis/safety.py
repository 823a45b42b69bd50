"""Safety API: run a registered shield over a conversation."""

from __future__ import annotations

from typing import Protocol

from pydantic import Field

from llama_stack.apis.common import JsonValue, Message, SafetyViolation, WireModel


class RunShieldRequest(WireModel):
    shield_id: str = Field(min_length=1)
    messages: list[Message] = Field(min_length=1)
    params: dict[str, JsonValue] = Field(default_factory=dict)


class RunShieldResponse(WireModel):
    violation: SafetyViolation | None = None


class Safety(Protocol):
    async def run_shield(self, request: RunShieldRequest) -> RunShieldResponse: ...
