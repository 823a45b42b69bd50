"""The Agent helper: an agent whose client tools are plain Python functions.

    agent = Agent(client, model="Llama3.2-3B-Instruct", instructions="...", tools=[get_weather])
    session_id = agent.create_session("demo")
    for event in agent.create_turn("What is the weather in Paris?", session_id):
        ...

The server runs the agent loop and its builtin tools. When a turn ends asking for a client tool,
the helper calls the Python function and sends its result back as a new turn (role ipython),
repeating until the agent answers; the caller sees one stream of events, with each tool result
(a ToolResponseMessage) between the turns."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Literal, overload

from llama_stack.apis.agents import AgentConfig, AgentTool, Turn, TurnStreamChunk
from llama_stack.apis.common import StopReason, ToolCall, ToolResponseMessage, UserMessage

from .client import LlamaStackClient
from .errors import LlamaStackError
from .resources.agents import AttachmentParam, TurnMessageParam
from .tools import ClientTool, client_tool

AgentEvent = TurnStreamChunk | ToolResponseMessage
"""What an agent's turn streams: the server's events, and the results of client tools."""


class TooManyToolRounds(LlamaStackError):
    """The agent kept calling client tools past `max_tool_rounds` without answering."""


class Agent:
    """`tools` mixes Python functions (client tools) and server-side tool definitions
    (e.g. MemoryToolDefinition); other keyword arguments are AgentConfig fields
    (input_shields, sampling_params, tool_choice, max_infer_iters...)."""

    def __init__(
        self,
        client: LlamaStackClient,
        *,
        model: str,
        instructions: str = "You are a helpful assistant.",
        tools: Sequence[Callable[..., Any] | AgentTool | Mapping[str, Any]] = (),
        max_tool_rounds: int = 10,
        **config: Any,
    ) -> None:
        self.client = client
        self.max_tool_rounds = max_tool_rounds
        self.client_tools: dict[str, ClientTool] = {}
        definitions: list[Any] = []
        for tool in tools:
            if callable(tool):
                made = client_tool(tool)
                self.client_tools[made.name] = made
                definitions.append(made.definition)
            else:
                definitions.append(tool)
        unknown = sorted(set(config) - set(AgentConfig.model_fields))
        if unknown:
            raise TypeError(f"not AgentConfig fields: {', '.join(unknown)}")
        self.config = AgentConfig(model=model, instructions=instructions, tools=definitions, **config)
        self.agent_id = client.agents.create(agent_config=self.config).agent_id
        self.session_ids: list[str] = []

    def create_session(self, name: str) -> str:
        session_id = self.client.agents.session.create(agent_id=self.agent_id, session_name=name).session_id
        self.session_ids.append(session_id)
        return session_id

    @overload
    def create_turn(
        self,
        messages: str | Sequence[TurnMessageParam],
        session_id: str | None = None,
        *,
        stream: Literal[True] = True,
        attachments: Sequence[AttachmentParam] | None = None,
    ) -> Iterator[AgentEvent]: ...
    @overload
    def create_turn(
        self,
        messages: str | Sequence[TurnMessageParam],
        session_id: str | None = None,
        *,
        stream: Literal[False],
        attachments: Sequence[AttachmentParam] | None = None,
    ) -> Turn: ...
    def create_turn(
        self,
        messages: str | Sequence[TurnMessageParam],
        session_id: str | None = None,
        *,
        stream: bool = True,
        attachments: Sequence[AttachmentParam] | None = None,
    ) -> Iterator[AgentEvent] | Turn:
        """Run a turn in `session_id` (default: the last session created) until the agent answers.
        Streamed, it yields every event and every client tool result; otherwise it returns the
        final Turn. A string is taken as one user message."""
        session = session_id or self._last_session()
        first: Sequence[TurnMessageParam] = [UserMessage(content=messages)] if isinstance(messages, str) else messages
        if stream:
            return self._stream_turns(session, first, attachments)
        turn = self.client.agents.turn.create(
            agent_id=self.agent_id, session_id=session, messages=first, attachments=attachments
        )
        rounds = 0
        while calls := self.pending_tool_calls(turn):
            rounds = self._next_round(rounds)
            results = [self.run_tool(call) for call in calls]
            turn = self.client.agents.turn.create(agent_id=self.agent_id, session_id=session, messages=results)
        return turn

    def _stream_turns(
        self, session_id: str, messages: Sequence[TurnMessageParam], attachments: Sequence[AttachmentParam] | None
    ) -> Iterator[AgentEvent]:
        rounds = 0
        while True:
            turn: Turn | None = None
            with self.client.agents.turn.create(
                agent_id=self.agent_id, session_id=session_id, messages=messages, attachments=attachments, stream=True
            ) as events:
                for chunk in events:
                    yield chunk
                    if chunk.event.payload.event_type == "turn_complete":
                        turn = chunk.event.payload.turn
            calls = self.pending_tool_calls(turn) if turn is not None else []
            if not calls:
                return
            rounds = self._next_round(rounds)
            results = [self.run_tool(call) for call in calls]
            yield from results
            messages, attachments = results, None

    def pending_tool_calls(self, turn: Turn) -> list[ToolCall]:
        """The tool calls a finished turn ends with: the client's to run (none: the agent answered)."""
        message = turn.output_message
        if message.stop_reason == StopReason.out_of_tokens:
            return []
        return list(message.tool_calls)

    def run_tool(self, call: ToolCall) -> ToolResponseMessage:
        """The result of one client tool call; an unknown tool or a failure is reported as text."""
        tool = self.client_tools.get(call.tool_name)
        if tool is None:
            known = ", ".join(sorted(self.client_tools)) or "none"
            text = f"error: unknown tool `{call.tool_name}` (client tools: {known})"
            return ToolResponseMessage(call_id=call.call_id, tool_name=call.tool_name, content=text)
        return tool.run(call)

    def delete(self) -> None:
        self.client.agents.delete(agent_id=self.agent_id)

    def _last_session(self) -> str:
        if not self.session_ids:
            raise LlamaStackError("create a session first (agent.create_session) or pass session_id")
        return self.session_ids[-1]

    def _next_round(self, rounds: int) -> int:
        if rounds == self.max_tool_rounds:
            raise TooManyToolRounds(f"the agent asked for client tools {rounds} times in a row without answering")
        return rounds + 1
