"""Inference API: chat completion, completion and embeddings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from enum import StrEnum
from typing import Annotated, Literal, Protocol

from pydantic import Field

from llama_stack.apis.common import (
    CompletionMessage,
    InterleavedContent,
    JsonValue,
    Message,
    SamplingParams,
    StopReason,
    ToolCall,
    ToolChoice,
    ToolDefinition,
    ToolPromptFormat,
    WireModel,
)
from llama_stack.apis.safety import GuardrailsField


class JsonSchemaResponseFormat(WireModel):
    type: Literal["json_schema"] = "json_schema"
    json_schema: dict[str, JsonValue]


class GrammarResponseFormat(WireModel):
    type: Literal["grammar"] = "grammar"
    bnf: dict[str, JsonValue]


ResponseFormat = Annotated[JsonSchemaResponseFormat | GrammarResponseFormat, Field(discriminator="type")]


class LogProbConfig(WireModel):
    top_k: int = Field(default=0, ge=0, le=20)


class TokenLogProbs(WireModel):
    logprobs_by_token: dict[str, float]


class ChatCompletionRequest(WireModel):
    model_id: str = Field(min_length=1)
    messages: list[Message] = Field(min_length=1)
    sampling_params: SamplingParams = Field(default_factory=SamplingParams)
    tools: list[ToolDefinition] = Field(default_factory=list)
    tool_choice: ToolChoice = ToolChoice.auto
    tool_prompt_format: ToolPromptFormat | None = None
    response_format: ResponseFormat | None = None
    stream: bool = False
    logprobs: LogProbConfig | None = None
    # Shields around this call (our extension of the v0.0.63 wire format): the face applies them;
    # they are never serialised on, to a provider's backend or a client.
    guardrails: GuardrailsField = Field(default=None, exclude=True)


class CompletionRequest(WireModel):
    model_id: str = Field(min_length=1)
    content: InterleavedContent
    sampling_params: SamplingParams = Field(default_factory=SamplingParams)
    response_format: ResponseFormat | None = None
    stream: bool = False
    logprobs: LogProbConfig | None = None


class EmbeddingsRequest(WireModel):
    model_id: str = Field(min_length=1)
    contents: list[InterleavedContent] = Field(min_length=1)


class Usage(WireModel):
    """Token counts. Not in the v0.0.63 wire format (its client ignores the field); the OpenAI
    face reports it, and providers fill it in whenever they know the counts."""

    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class ChatCompletionResponse(WireModel):
    completion_message: CompletionMessage
    logprobs: list[TokenLogProbs] | None = None
    usage: Usage | None = None


class ChatCompletionEventType(StrEnum):
    start = "start"
    progress = "progress"
    complete = "complete"


class ToolCallParseStatus(StrEnum):
    started = "started"
    in_progress = "in_progress"
    failure = "failure"
    success = "success"


class ToolCallDelta(WireModel):
    content: str | ToolCall
    parse_status: ToolCallParseStatus


class ChatCompletionResponseEvent(WireModel):
    event_type: ChatCompletionEventType
    delta: str | ToolCallDelta
    logprobs: list[TokenLogProbs] | None = None
    stop_reason: StopReason | None = None
    usage: Usage | None = None  # on the `complete` event


class ChatCompletionResponseStreamChunk(WireModel):
    event: ChatCompletionResponseEvent


class CompletionResponse(WireModel):
    content: str
    stop_reason: StopReason
    logprobs: list[TokenLogProbs] | None = None
    usage: Usage | None = None


class CompletionResponseStreamChunk(WireModel):
    delta: str
    stop_reason: StopReason | None = None
    logprobs: list[TokenLogProbs] | None = None
    usage: Usage | None = None  # on the last chunk


class EmbeddingsResponse(WireModel):
    embeddings: list[list[float]]
    usage: Usage | None = None


class Inference(Protocol):
    """Streaming and non-streaming calls are separate methods so each has one precise return type;
    the route picks one by the request's `stream` flag."""

    async def chat_completion(self, request: ChatCompletionRequest) -> ChatCompletionResponse: ...

    def chat_completion_stream(
        self, request: ChatCompletionRequest
    ) -> AsyncIterator[ChatCompletionResponseStreamChunk]: ...

    async def completion(self, request: CompletionRequest) -> CompletionResponse: ...

    def completion_stream(self, request: CompletionRequest) -> AsyncIterator[CompletionResponseStreamChunk]: ...

    async def embeddings(self, request: EmbeddingsRequest) -> EmbeddingsResponse: ...
