"""Types shared by every API: content, messages, tool calls and sampling (the v0.0.63 wire format),
and the JSON codec every wire crossing uses (requests, answers, SSE frames, upstream calls)."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import PydanticSerializationError, from_json, to_json, to_jsonable_python

JsonValue = Any


def dump_json(value: Any, exclude_none: bool = False) -> bytes:
    """Wire values (pydantic models, or lists/dicts of them and of plain values) as JSON bytes,
    in pydantic-core's serialiser (~7x json.dumps). Text can hold lone surrogates (a JSON escape
    like \\ud800 allows them) that UTF-8 cannot encode; such values go out escaped, as JSON
    permits, instead of failing."""
    try:
        return to_json(value, exclude_none=exclude_none)
    except PydanticSerializationError:
        return json.dumps(to_jsonable_python(value, exclude_none=exclude_none), separators=(",", ":")).encode()


def load_json(data: bytes | str) -> Any:
    """JSON text as Python values, in pydantic-core's parser (~4x json.loads). That parser refuses
    lone surrogate escapes, which json.loads accepts; such text (and text that is not JSON, so
    the error is json's own ValueError) takes json.loads."""
    try:
        return from_json(data)
    except ValueError:
        return json.loads(data)


class WireModel(BaseModel):
    """Base of every wire type: unknown fields are ignored, as the official client sends extras."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, protected_namespaces=())


class URL(WireModel):
    uri: str


class TextContentItem(WireModel):
    type: Literal["text"] = "text"
    text: str


class ImageContentItem(WireModel):
    """An image given inline (base64 `data`) or by `url` (http(s) or a data: URL)."""

    type: Literal["image"] = "image"
    data: str | None = None
    url: URL | None = None


InterleavedContentItem = Annotated[TextContentItem | ImageContentItem, Field(discriminator="type")]
InterleavedContent = str | InterleavedContentItem | list[InterleavedContentItem]


def content_text(content: InterleavedContent) -> str:
    """The text of a content value, images left out."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(content_text(item) for item in content)
    return content.text if isinstance(content, TextContentItem) else ""


def content_has_image(content: InterleavedContent) -> bool:
    if isinstance(content, list):
        return any(isinstance(item, ImageContentItem) for item in content)
    return isinstance(content, ImageContentItem)


class BuiltinTool(StrEnum):
    brave_search = "brave_search"
    wolfram_alpha = "wolfram_alpha"
    photogen = "photogen"
    code_interpreter = "code_interpreter"


class StopReason(StrEnum):
    end_of_turn = "end_of_turn"
    end_of_message = "end_of_message"
    out_of_tokens = "out_of_tokens"


class ToolCall(WireModel):
    call_id: str
    tool_name: str
    arguments: dict[str, JsonValue]


class ToolResponse(WireModel):
    call_id: str
    tool_name: str
    content: InterleavedContent


class UserMessage(WireModel):
    role: Literal["user"] = "user"
    content: InterleavedContent
    context: InterleavedContent | None = None


class SystemMessage(WireModel):
    role: Literal["system"] = "system"
    content: InterleavedContent


class ToolResponseMessage(WireModel):
    role: Literal["ipython"] = "ipython"
    call_id: str
    tool_name: str
    content: InterleavedContent


class CompletionMessage(WireModel):
    role: Literal["assistant"] = "assistant"
    content: InterleavedContent
    stop_reason: StopReason = StopReason.end_of_turn
    tool_calls: list[ToolCall] = Field(default_factory=list)


Message = Annotated[UserMessage | SystemMessage | ToolResponseMessage | CompletionMessage, Field(discriminator="role")]


class SamplingStrategy(StrEnum):
    greedy = "greedy"
    top_p = "top_p"
    top_k = "top_k"


class SamplingParams(WireModel):
    strategy: SamplingStrategy = SamplingStrategy.greedy
    temperature: float | None = Field(default=0.0, ge=0.0, le=10.0)
    top_p: float | None = Field(default=0.95, gt=0.0, le=1.0)
    top_k: int | None = Field(default=0, ge=0)
    max_tokens: int | None = Field(default=0, ge=0)
    repetition_penalty: float | None = Field(default=1.0, gt=0.0)
    # Not in v0.0.63; lets a client (and the OpenAI face) ask for reproducible sampling.
    seed: int | None = None


class ToolParamDefinition(WireModel):
    param_type: str
    description: str | None = None
    required: bool | None = True
    default: JsonValue = None


class ToolDefinition(WireModel):
    """A tool offered to the model: a builtin tool name or a custom function."""

    tool_name: str
    description: str | None = None
    parameters: dict[str, ToolParamDefinition] | None = None


class ToolChoice(StrEnum):
    auto = "auto"
    required = "required"


class ToolPromptFormat(StrEnum):
    json = "json"
    function_tag = "function_tag"
    python_list = "python_list"


class SafetyViolation(WireModel):
    violation_level: Literal["info", "warn", "error"]
    user_message: str | None = None
    metadata: dict[str, JsonValue] = Field(default_factory=dict)
