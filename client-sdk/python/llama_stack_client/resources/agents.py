"""client.agents: agents, their sessions, turns (whole or streamed as events) and steps.

Routes and parameters follow llama-stack-client 0.0.63: session/get sends its ids in the query
and the turn ids in a POST body; turn/get and step/get are GETs with query parameters."""

from __future__ import annotations

from collections.abc import Awaitable, Mapping, Sequence
from typing import Any, Literal, TypeVar, overload

from llama_stack.apis.agents import (
    AgentConfig,
    Attachment,
    CreateAgentResponse,
    CreateSessionResponse,
    GetStepResponse,
    Session,
    Turn,
    TurnStreamChunk,
)
from llama_stack.apis.common import ToolResponseMessage, UserMessage

from ..calls import AsyncRunner, Call, Resource, StreamCall, SyncRunner, body, endpoint, parse_none, parser
from ..streaming import AsyncStream, Stream

C = TypeVar("C", covariant=True)

TurnMessageParam = UserMessage | ToolResponseMessage | Mapping[str, Any]
AttachmentParam = Attachment | Mapping[str, Any]

TURN = "/alpha/agents/turn/create"

parse_turn = parser(Turn)
parse_turn_chunk = parser(TurnStreamChunk)
parse_session = parser(Session)


class Sessions(Resource[C]):
    @endpoint
    def create(self, *, agent_id: str, session_name: str) -> Call[CreateSessionResponse]:
        fields = body(agent_id=agent_id, session_name=session_name)
        return Call("POST", "/alpha/agents/session/create", parser(CreateSessionResponse), body=fields)

    @endpoint
    def retrieve(self, *, agent_id: str, session_id: str, turn_ids: Sequence[str] | None = None) -> Call[Session]:
        """The session with its turns (only `turn_ids`, when given)."""
        query = {"agent_id": agent_id, "session_id": session_id}
        return Call("POST", "/alpha/agents/session/get", parse_session, query=query, body=body(turn_ids=turn_ids))

    @endpoint
    def delete(self, *, agent_id: str, session_id: str) -> Call[None]:
        fields = body(agent_id=agent_id, session_id=session_id)
        return Call("POST", "/alpha/agents/session/delete", parse_none, body=fields)


class Turns(Resource[C]):
    @overload
    def create(
        self: Turns[SyncRunner],
        *,
        agent_id: str,
        session_id: str,
        messages: Sequence[TurnMessageParam],
        attachments: Sequence[AttachmentParam] | None = None,
        stream: Literal[False] = False,
    ) -> Turn: ...
    @overload
    def create(
        self: Turns[SyncRunner],
        *,
        agent_id: str,
        session_id: str,
        messages: Sequence[TurnMessageParam],
        attachments: Sequence[AttachmentParam] | None = None,
        stream: Literal[True],
    ) -> Stream[TurnStreamChunk]: ...
    @overload
    def create(
        self: Turns[AsyncRunner],
        *,
        agent_id: str,
        session_id: str,
        messages: Sequence[TurnMessageParam],
        attachments: Sequence[AttachmentParam] | None = None,
        stream: Literal[False] = False,
    ) -> Awaitable[Turn]: ...
    @overload
    def create(
        self: Turns[AsyncRunner],
        *,
        agent_id: str,
        session_id: str,
        messages: Sequence[TurnMessageParam],
        attachments: Sequence[AttachmentParam] | None = None,
        stream: Literal[True],
    ) -> Awaitable[AsyncStream[TurnStreamChunk]]: ...
    def create(
        self,
        *,
        agent_id: str,
        session_id: str,
        messages: Sequence[TurnMessageParam],
        attachments: Sequence[AttachmentParam] | None = None,
        stream: bool = False,
    ) -> Any:
        """Run one turn of the agent. Whole, it returns the finished Turn; streamed, the turn's
        events: turn_start, step_start / step_progress / step_complete per step, turn_complete."""
        fields = body(
            agent_id=agent_id, session_id=session_id, messages=messages, attachments=attachments, stream=stream
        )
        if stream:
            return self._client._stream(StreamCall("POST", TURN, parse_turn_chunk, body=fields))
        return self._client._call(Call("POST", TURN, parse_turn, body=fields))

    @endpoint
    def retrieve(self, *, agent_id: str, session_id: str, turn_id: str) -> Call[Turn]:
        query = {"agent_id": agent_id, "session_id": session_id, "turn_id": turn_id}
        return Call("GET", "/alpha/agents/turn/get", parse_turn, query=query)


class Steps(Resource[C]):
    @endpoint
    def retrieve(self, *, agent_id: str, session_id: str, turn_id: str, step_id: str) -> Call[GetStepResponse]:
        query = {"agent_id": agent_id, "session_id": session_id, "turn_id": turn_id, "step_id": step_id}
        return Call("GET", "/alpha/agents/step/get", parser(GetStepResponse), query=query)


class Agents(Resource[C]):
    def __init__(self, client: C) -> None:
        super().__init__(client)
        self.session = Sessions(client)
        self.turn = Turns(client)
        self.steps = Steps(client)

    @endpoint
    def create(self, *, agent_config: AgentConfig | Mapping[str, Any]) -> Call[CreateAgentResponse]:
        """Create an agent; its id is the response's `agent_id`."""
        return Call("POST", "/alpha/agents/create", parser(CreateAgentResponse), body=body(agent_config=agent_config))

    @endpoint
    def delete(self, *, agent_id: str) -> Call[None]:
        return Call("POST", "/alpha/agents/delete", parse_none, body={"agent_id": agent_id})
