"""Safety API: run a registered shield over a conversation; the guardrails a chat request may ask for."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PositiveInt, ValidationError

from llama_stack.apis.common import JsonValue, Message, SafetyViolation, WireModel
from llama_stack.apis.errors import InvalidRequest


class RunShieldRequest(WireModel):
    shield_id: str = Field(min_length=1)
    messages: list[Message] = Field(min_length=1)
    params: dict[str, JsonValue] = Field(default_factory=dict)


class RunShieldResponse(WireModel):
    violation: SafetyViolation | None = None


class Guardrails(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: list[str] = Field(default_factory=list, description="shields run on the request's messages")
    output: list[str] = Field(default_factory=list, description="shields run on the answer")
    check_every: Literal["sentence"] | PositiveInt = Field(
        default="sentence", description="when a streamed answer is checked: each sentence, or every N deltas"
    )

    @classmethod
    def from_body(cls, body: Any) -> Guardrails | None:
        return cls.parse(body.get("guardrails") if isinstance(body, dict) else None)

    @classmethod
    def parse(cls, raw: Any) -> Guardrails | None:
        """The `guardrails` field of a request; malformed, it is a 400 naming the field (not the
        422 of a schema violation), on both faces alike."""
        if raw is None or isinstance(raw, Guardrails):
            return raw
        try:
            guardrails = cls.model_validate(raw)
        except ValidationError as e:
            problem = e.errors()[0]
            where = ".".join(str(part) for part in ("guardrails", *problem["loc"]))
            raise InvalidRequest(f"{where}: {problem['msg']}") from e
        return guardrails if guardrails.input or guardrails.output else None


# The `guardrails` field of each face's chat request (and of /v1/responses), parsed once with it.
GuardrailsField = Annotated[Guardrails | None, BeforeValidator(Guardrails.parse)]


class Safety(Protocol):
    async def run_shield(self, request: RunShieldRequest) -> RunShieldResponse: ...
