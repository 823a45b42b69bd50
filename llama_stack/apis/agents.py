"""Agents API: agents, sessions, turns and steps, streamed as turn and step events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal, Protocol

from pydantic import ConfigDict, Field, JsonValue, field_validator

from llama_stack.apis.common import (
    URL,
    CompletionMessage,
    InterleavedContent,
    SafetyViolation,
    SamplingParams,
    ToolCall,
    ToolChoice,
    ToolParamDefinition,
    ToolPromptFormat,
    ToolResponse,
    ToolResponseMessage,
    UserMessage,
    WireModel,
)
from llama_stack.apis.inference import ToolCallDelta
from llama_stack.apis.memory_banks import MemoryBank


class _StrictWire(WireModel):
    """An agent's definition keeps the fields a client sends that this server does not know, so
    that creating the agent can refuse them by name (400) instead of dropping them unseen."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, protected_namespaces=())


class AgentSamplingParams(SamplingParams):
    """An agent's sampling params: a misspelt knob is refused by name, not dropped (see _StrictWire)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, protected_namespaces=())


class FunctionParamDefinition(ToolParamDefinition):
    model_config = ConfigDict(extra="allow", populate_by_name=True, protected_namespaces=())


class RestAPIExecutionConfig(WireModel):
    """v0.0.63's `remote_execution` of a tool: accepted on the wire, refused when an agent is created
    (the server does not call arbitrary REST endpoints on a model's behalf)."""

    url: URL
    method: Literal["GET", "POST", "PUT", "DELETE"]
    params: dict[str, JsonValue] | None = None
    headers: dict[str, JsonValue] | None = None
    body: dict[str, JsonValue] | None = None


class _ToolBase(_StrictWire):
    # Shields run around each call of this tool: input shields on the call, output shields on its result.
    input_shields: list[str] = Field(default_factory=list)
    output_shields: list[str] = Field(default_factory=list)
    remote_execution: RestAPIExecutionConfig | None = None


class SearchToolDefinition(_ToolBase):
    type: Literal["brave_search"] = "brave_search"
    api_key: str = ""
    engine: Literal["bing", "brave", "tavily"] = "brave"


class WolframAlphaToolDefinition(_ToolBase):
    type: Literal["wolfram_alpha"] = "wolfram_alpha"
    api_key: str = ""


class PhotogenToolDefinition(_ToolBase):
    type: Literal["photogen"] = "photogen"


class CodeInterpreterToolDefinition(_ToolBase):
    type: Literal["code_interpreter"] = "code_interpreter"
    # False: the model may still call code_interpreter, but the app runs the code (a client call).
    enable_inline_code_execution: bool = True


class FunctionCallToolDefinition(_ToolBase):
    type: Literal["function_call"] = "function_call"
    function_name: str
    description: str
    parameters: dict[str, FunctionParamDefinition] = Field(default_factory=dict)

    @field_validator("parameters", mode="before")
    @classmethod
    def _plain_params(cls, value: object) -> object:
        """Python callers may pass the common ToolParamDefinition."""
        if isinstance(value, dict):
            return {k: v.model_dump() if isinstance(v, ToolParamDefinition) else v for k, v in value.items()}
        return value


class MemoryBankConfig(_StrictWire):
    """One bank the memory tool retrieves from. `type` must be the bank's own type; `keys` (key-value
    banks only) names the documents to fetch; `entities` (graph banks) has no provider here."""

    bank_id: str
    type: Literal["vector", "keyvalue", "keyword", "graph"] = "vector"
    keys: list[str] | None = None
    entities: list[str] | None = None


class DefaultQueryGeneratorConfig(_StrictWire):
    """The retrieval query is the text of the turn's input messages joined by `sep`."""

    type: Literal["default"] = "default"
    sep: str = " "


class LLMQueryGeneratorConfig(_StrictWire):
    """The retrieval query is `model`'s answer to `template` (Jinja, sandboxed) rendered with
    `messages`: the session's conversation so far and the turn's input, as dicts."""

    type: Literal["llm"] = "llm"
    model: str = Field(min_length=1)
    template: str = Field(min_length=1)


class CustomQueryGeneratorConfig(_StrictWire):
    """Named by v0.0.63 without a definition: accepted on the wire, refused when an agent is created."""

    type: Literal["custom"] = "custom"


QueryGeneratorConfig = Annotated[
    DefaultQueryGeneratorConfig | LLMQueryGeneratorConfig | CustomQueryGeneratorConfig,
    Field(discriminator="type"),
]


class MemoryToolDefinition(_ToolBase):
    """Retrieval before inference (not a tool the model calls): input shields check the query,
    output shields the retrieved context."""

    type: Literal["memory"] = "memory"
    memory_bank_configs: list[MemoryBankConfig] = Field(default_factory=list)
    query_generator_config: QueryGeneratorConfig = Field(default_factory=DefaultQueryGeneratorConfig)
    max_tokens_in_context: int = Field(default=4096, ge=1)
    max_chunks: int = Field(default=10, ge=1)


AgentTool = Annotated[
    SearchToolDefinition
    | WolframAlphaToolDefinition
    | PhotogenToolDefinition
    | CodeInterpreterToolDefinition
    | FunctionCallToolDefinition
    | MemoryToolDefinition,
    Field(discriminator="type"),
]


class AgentConfig(_StrictWire):
    model: str = Field(min_length=1)
    instructions: str
    # Sessions are always kept in the agents kvstore (so every replica serves them): `true` is
    # what happens, and `false` asks for no less than that.
    enable_session_persistence: bool = False
    max_infer_iters: int = Field(default=10, ge=1)
    sampling_params: AgentSamplingParams = Field(default_factory=AgentSamplingParams)
    input_shields: list[str] = Field(default_factory=list)
    output_shields: list[str] = Field(default_factory=list)
    tools: list[AgentTool] = Field(default_factory=list)
    tool_choice: ToolChoice = ToolChoice.auto
    tool_prompt_format: ToolPromptFormat = ToolPromptFormat.json

    @field_validator("sampling_params", mode="before")
    @classmethod
    def _plain_sampling(cls, value: object) -> object:
        """Python callers may pass the common SamplingParams."""
        return value.model_dump() if isinstance(value, SamplingParams) else value


class Attachment(_StrictWire):
    content: InterleavedContent | URL
    mime_type: str


class StepType(StrEnum):
    inference = "inference"
    tool_execution = "tool_execution"
    shield_call = "shield_call"
    memory_retrieval = "memory_retrieval"


class _StepBase(WireModel):
    turn_id: str
    step_id: str
    started_at: datetime | None = None
    completed_at: datetime | None = None


class InferenceStep(_StepBase):
    step_type: Literal["inference"] = "inference"
    model_response: CompletionMessage


class ToolExecutionStep(_StepBase):
    step_type: Literal["tool_execution"] = "tool_execution"
    tool_calls: list[ToolCall]
    tool_responses: list[ToolResponse]


class ShieldCallStep(_StepBase):
    step_type: Literal["shield_call"] = "shield_call"
    violation: SafetyViolation | None = None


class MemoryRetrievalStep(_StepBase):
    step_type: Literal["memory_retrieval"] = "memory_retrieval"
    memory_bank_ids: list[str]
    inserted_context: InterleavedContent


Step = Annotated[
    InferenceStep | ToolExecutionStep | ShieldCallStep | MemoryRetrievalStep, Field(discriminator="step_type")
]

TurnInputMessage = Annotated[UserMessage | ToolResponseMessage, Field(discriminator="role")]


class Turn(WireModel):
    turn_id: str
    session_id: str
    input_messages: list[TurnInputMessage]
    steps: list[Step]
    output_message: CompletionMessage
    output_attachments: list[Attachment] = Field(default_factory=list)
    started_at: datetime
    completed_at: datetime | None = None


class Session(WireModel):
    session_id: str
    session_name: str
    turns: list[Turn]
    started_at: datetime
    memory_bank: MemoryBank | None = None


class StepStartPayload(WireModel):
    event_type: Literal["step_start"] = "step_start"
    step_type: StepType
    step_id: str
    metadata: dict[str, object] | None = None


class StepProgressPayload(WireModel):
    event_type: Literal["step_progress"] = "step_progress"
    step_type: StepType
    step_id: str
    text_delta: str | None = None
    tool_call_delta: ToolCallDelta | None = None


class StepCompletePayload(WireModel):
    event_type: Literal["step_complete"] = "step_complete"
    step_type: StepType
    step_details: Step


class TurnStartPayload(WireModel):
    event_type: Literal["turn_start"] = "turn_start"
    turn_id: str


class TurnCompletePayload(WireModel):
    event_type: Literal["turn_complete"] = "turn_complete"
    turn: Turn


TurnEventPayload = Annotated[
    StepStartPayload | StepProgressPayload | StepCompletePayload | TurnStartPayload | TurnCompletePayload,
    Field(discriminator="event_type"),
]


class TurnEvent(WireModel):
    payload: TurnEventPayload


class TurnStreamChunk(WireModel):
    event: TurnEvent


class CreateAgentRequest(WireModel):
    agent_config: AgentConfig


class CreateAgentResponse(WireModel):
    agent_id: str


class DeleteAgentRequest(WireModel):
    agent_id: str


class CreateSessionRequest(WireModel):
    agent_id: str
    session_name: str


class CreateSessionResponse(WireModel):
    session_id: str


class SessionRef(WireModel):
    agent_id: str
    session_id: str


class GetSessionRequest(SessionRef):
    turn_ids: list[str] | None = None


class CreateTurnRequest(SessionRef):
    # Unknown fields are kept so the turn can refuse them by name (see _StrictWire).
    model_config = ConfigDict(extra="allow", populate_by_name=True, protected_namespaces=())

    messages: list[TurnInputMessage] = Field(min_length=1)
    attachments: list[Attachment] = Field(default_factory=list)
    stream: bool = False

    @field_validator("attachments", mode="before")
    @classmethod
    def _none_is_empty(cls, value: object) -> object:
        """The official client's Agent helper sends `"attachments": null` when it has none."""
        return [] if value is None else value


class TurnRef(SessionRef):
    turn_id: str


class StepRef(TurnRef):
    step_id: str


class GetStepResponse(WireModel):
    step: Step


class Agents(Protocol):
    async def create_agent(self, request: CreateAgentRequest) -> CreateAgentResponse: ...
    async def delete_agent(self, agent_id: str) -> None: ...
    async def create_session(self, request: CreateSessionRequest) -> CreateSessionResponse: ...
    async def get_session(self, request: GetSessionRequest) -> Session: ...
    async def delete_session(self, request: SessionRef) -> None: ...
    def create_turn(self, request: CreateTurnRequest) -> AsyncIterator[TurnStreamChunk]: ...
    async def get_turn(self, request: TurnRef) -> Turn: ...
    async def get_step(self, request: StepRef) -> GetStepResponse: ...
