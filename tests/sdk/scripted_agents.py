"""A scripted agents provider for SDK tests and the docs' examples: it answers by rule, streams
v0.0.63 turn events through the real server, and asks for a client tool the way a real agent does.

Rules: a user message asking about "the weather in <City>" to an agent offering a `get_weather`
function tool ends the turn with a call to it; a tool result (role ipython) is answered with
"The tool said: <result>"; anything else is echoed ("echo: <text>") word by word."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from pydantic import BaseModel

from llama_stack.apis.agents import (
    AgentConfig,
    CreateAgentRequest,
    CreateAgentResponse,
    CreateSessionRequest,
    CreateSessionResponse,
    CreateTurnRequest,
    FunctionCallToolDefinition,
    GetSessionRequest,
    GetStepResponse,
    InferenceStep,
    Session,
    SessionRef,
    StepCompletePayload,
    StepProgressPayload,
    StepRef,
    StepStartPayload,
    StepType,
    Turn,
    TurnCompletePayload,
    TurnEvent,
    TurnEventPayload,
    TurnRef,
    TurnStartPayload,
    TurnStreamChunk,
)
from llama_stack.apis.common import CompletionMessage, StopReason, ToolCall, ToolResponseMessage, content_text
from llama_stack.apis.errors import NotFound
from llama_stack.apis.inference import ToolCallDelta, ToolCallParseStatus
from llama_stack.distribution.provider import Api, Deps, ProviderSpec


class ScriptedAgentsConfig(BaseModel):
    pass


class ScriptedAgents:
    def __init__(self) -> None:
        self.agents: dict[str, AgentConfig] = {}
        self.sessions: dict[str, Session] = {}

    async def create_agent(self, request: CreateAgentRequest) -> CreateAgentResponse:
        agent_id = f"agent-{uuid.uuid4().hex[:8]}"
        self.agents[agent_id] = request.agent_config
        return CreateAgentResponse(agent_id=agent_id)

    async def delete_agent(self, agent_id: str) -> None:
        self._agent(agent_id)
        del self.agents[agent_id]

    async def create_session(self, request: CreateSessionRequest) -> CreateSessionResponse:
        self._agent(request.agent_id)
        session_id = f"session-{uuid.uuid4().hex[:8]}"
        self.sessions[session_id] = Session(
            session_id=session_id, session_name=request.session_name, turns=[], started_at=_now()
        )
        return CreateSessionResponse(session_id=session_id)

    async def get_session(self, request: GetSessionRequest) -> Session:
        session = self._session(request)
        if request.turn_ids is None:
            return session
        return session.model_copy(update={"turns": [t for t in session.turns if t.turn_id in request.turn_ids]})

    async def delete_session(self, request: SessionRef) -> None:
        self._session(request)
        del self.sessions[request.session_id]

    async def create_turn(self, request: CreateTurnRequest) -> AsyncIterator[TurnStreamChunk]:
        config = self._agent(request.agent_id)
        session = self._session(request)
        turn_id, step_id, started = f"turn-{uuid.uuid4().hex[:8]}", f"step-{uuid.uuid4().hex[:8]}", _now()
        yield _chunk(TurnStartPayload(turn_id=turn_id))
        yield _chunk(StepStartPayload(step_type=StepType.inference, step_id=step_id))
        message = _reply(config, request)
        if message.tool_calls:
            delta = ToolCallDelta(content=message.tool_calls[0], parse_status=ToolCallParseStatus.success)
            yield _chunk(StepProgressPayload(step_type=StepType.inference, step_id=step_id, tool_call_delta=delta))
        else:
            for index, word in enumerate(content_text(message.content).split(" ")):
                text = word if index == 0 else " " + word
                yield _chunk(StepProgressPayload(step_type=StepType.inference, step_id=step_id, text_delta=text))
        step = InferenceStep(
            turn_id=turn_id, step_id=step_id, model_response=message, started_at=started, completed_at=_now()
        )
        yield _chunk(StepCompletePayload(step_type=StepType.inference, step_details=step))
        turn = Turn(
            turn_id=turn_id,
            session_id=session.session_id,
            input_messages=request.messages,
            steps=[step],
            output_message=message,
            started_at=started,
            completed_at=_now(),
        )
        session.turns.append(turn)
        yield _chunk(TurnCompletePayload(turn=turn))

    async def get_turn(self, request: TurnRef) -> Turn:
        for turn in self._session(request).turns:
            if turn.turn_id == request.turn_id:
                return turn
        raise NotFound(f"Turn '{request.turn_id}' is not in session '{request.session_id}'.")

    async def get_step(self, request: StepRef) -> GetStepResponse:
        for step in (await self.get_turn(request)).steps:
            if step.step_id == request.step_id:
                return GetStepResponse(step=step)
        raise NotFound(f"Step '{request.step_id}' is not in turn '{request.turn_id}'.")

    def _agent(self, agent_id: str) -> AgentConfig:
        if agent_id not in self.agents:
            raise NotFound(f"Agent '{agent_id}' does not exist.")
        return self.agents[agent_id]

    def _session(self, ref: SessionRef) -> Session:
        self._agent(ref.agent_id)
        if ref.session_id not in self.sessions:
            raise NotFound(f"Session '{ref.session_id}' does not exist.")
        return self.sessions[ref.session_id]


def _reply(config: AgentConfig, request: CreateTurnRequest) -> CompletionMessage:
    last = request.messages[-1]
    text = content_text(last.content)
    if isinstance(last, ToolResponseMessage):
        return CompletionMessage(content=f"The tool said: {text}", stop_reason=StopReason.end_of_turn)
    functions = {tool.function_name for tool in config.tools if isinstance(tool, FunctionCallToolDefinition)}
    asked = re.search(r"weather in (\w+)", text)
    if asked and "get_weather" in functions:
        call = ToolCall(call_id=f"call-{uuid.uuid4().hex[:6]}", tool_name="get_weather", arguments={"city": asked[1]})
        return CompletionMessage(content="", stop_reason=StopReason.end_of_message, tool_calls=[call])
    return CompletionMessage(content=f"echo: {text}", stop_reason=StopReason.end_of_turn)


def _chunk(payload: TurnEventPayload) -> TurnStreamChunk:
    return TurnStreamChunk(event=TurnEvent(payload=payload))


def _now() -> datetime:
    return datetime.now(UTC)


async def _factory(config: ScriptedAgentsConfig, deps: Deps) -> ScriptedAgents:
    return ScriptedAgents()


SCRIPTED_AGENTS_SPEC = ProviderSpec(
    api=Api.agents,
    provider_type="test::scripted-agents",
    config_class=ScriptedAgentsConfig,
    factory=_factory,
    description="scripted agents for SDK tests",
)
