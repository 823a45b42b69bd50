"""One turn of an agent: input shields → memory retrieval → inference ⇄ builtin tools (at most
max_infer_iters inference steps) → output shields. Each step streams as v0.0.63 events and is
saved as soon as it completes, so another replica can read a running turn's steps.

A turn ends when the model answers without tool calls, when it calls a client tool (the app
answers with a new turn whose message has role ipython), when it runs out of tokens or of
inference steps (then the output's stop_reason is out_of_tokens, so the official Agent helper
does not take a builtin call for its own), or when a shield reports an error-level violation
(then the output is the violation's message).

A tool's own shields run around each use of it (touchpoints "tool-input" and "tool-output"):
input shields on the model's call before it runs or goes to the app, output shields on the
result before the model sees it (for a client tool: on the app's `ipython` message when the
next turn brings it). The memory tool's input shields check the retrieval query, its output
shields the retrieved context.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

from llama_stack.apis.agents import (
    AgentConfig,
    Attachment,
    CreateTurnRequest,
    DefaultQueryGeneratorConfig,
    InferenceStep,
    MemoryBankConfig,
    MemoryRetrievalStep,
    ShieldCallStep,
    Step,
    StepType,
    ToolExecutionStep,
    Turn,
    TurnStreamChunk,
)
from llama_stack.apis.common import (
    CompletionMessage,
    InterleavedContent,
    InterleavedContentItem,
    Message,
    SafetyViolation,
    StopReason,
    TextContentItem,
    ToolCall,
    ToolResponse,
    ToolResponseMessage,
    UserMessage,
)
from llama_stack.apis.errors import StackError
from llama_stack.apis.inference import ChatCompletionRequest, ToolCallDelta, ToolCallParseStatus
from llama_stack.apis.safety import RunShieldRequest
from llama_stack.providers.agents.tools.memory import Retriever, generate_query
from llama_stack.providers.agents.tools.toolbox import Toolbox, ToolOutcome

from . import events
from .history import tool_message
from .persistence import AgentStore, SessionRecord, random_id, time_ordered_id

log = logging.getLogger(__name__)

REFUSAL = "I can't answer that. Can I help with something else?"
DEFAULT_MAX_CHUNKS = 10
DEFAULT_MAX_CONTEXT_TOKENS = 4096


@dataclass
class TurnPlan:
    """Everything a turn needs, loaded before it starts."""

    agent_id: str
    config: AgentConfig
    session: SessionRecord
    toolbox: Toolbox
    request: CreateTurnRequest
    history: list[Message]


@dataclass
class _State:
    turn: Turn
    messages: list[Message]
    output: CompletionMessage | None = None
    attachments: list[Attachment] = field(default_factory=list)


class TurnRunner:
    def __init__(self, inference: Any, safety: Any | None, retriever: Retriever, store: AgentStore) -> None:
        self.inference = inference
        self.safety = safety
        self.retriever = retriever
        self.store = store

    async def run(self, plan: TurnPlan) -> AsyncGenerator[TurnStreamChunk, None]:
        request = plan.request
        turn = Turn(
            turn_id=time_ordered_id(),
            session_id=plan.session.session_id,
            input_messages=request.messages,
            steps=[],
            output_message=CompletionMessage(content=""),
            started_at=events.now(),
        )
        state = _State(turn=turn, messages=[*plan.history, *request.messages])
        finished = False
        try:
            yield events.turn_start(turn.turn_id)
            async with aclosing(self._steps(plan, state)) as steps:
                async for chunk in steps:
                    yield chunk
            assert state.output is not None
            turn.output_message = state.output
            turn.output_attachments = state.attachments
            turn.completed_at = events.now()
            await self.store.put_turn(plan.agent_id, turn)
            finished = True
            yield events.turn_complete(turn)
        finally:
            if not finished:
                await self._forget_progress(plan, turn)

    async def _steps(self, plan: TurnPlan, state: _State) -> AsyncGenerator[TurnStreamChunk, None]:
        # Each phase is a generator closed explicitly (aclosing), so that a client leaving
        # mid-stream closes the model's stream behind it at once, not when it is collected.
        config = plan.config
        inputs: list[Message] = list(plan.request.messages)
        # A client tool's result, as the app sends it, passes that tool's output shields first.
        async with aclosing(self._check_results(plan, state, plan.request.messages)) as phase:
            async for chunk in phase:
                yield chunk
        if state.output is not None:
            return
        async with aclosing(self._shields(plan, state, config.input_shields, inputs, "user-input")) as phase:
            async for chunk in phase:
                yield chunk
        if state.output is not None:
            return
        async with aclosing(self._retrieve(plan, state)) as phase:
            async for chunk in phase:
                yield chunk
        if state.output is not None:
            return
        for iteration in range(1, config.max_infer_iters + 1):
            async with aclosing(self._infer(plan, state)) as phase:
                async for chunk in phase:
                    yield chunk
            message = state.messages[-1]
            assert isinstance(message, CompletionMessage)
            if not message.tool_calls or message.stop_reason == StopReason.out_of_tokens:
                state.output = message
                break
            if iteration == config.max_infer_iters and not any(map(plan.toolbox.is_client_call, message.tool_calls)):
                log.info("turn %s stopped after max_infer_iters=%d", state.turn.turn_id, iteration)
                state.output = message.model_copy(update={"stop_reason": StopReason.out_of_tokens})
                break
            async with aclosing(self._check_calls(plan, state, message.tool_calls)) as phase:
                async for chunk in phase:
                    yield chunk
            if state.output is not None:
                return
            if any(plan.toolbox.is_client_call(call) for call in message.tool_calls):
                state.output = message
                break
            async with aclosing(self._run_tools(plan, state, message.tool_calls)) as phase:
                async for chunk in phase:
                    yield chunk
            results = state.messages[-len(message.tool_calls) :]
            async with aclosing(self._check_results(plan, state, results)) as phase:
                async for chunk in phase:
                    yield chunk
            if state.output is not None:
                return
        assert state.output is not None
        answer = state.output
        checked: list[Message] = [*plan.request.messages, answer]
        async with aclosing(self._shields(plan, state, config.output_shields, checked, "assistant-output")) as phase:
            async for chunk in phase:
                yield chunk

    async def _complete(self, plan: TurnPlan, state: _State, step: Step) -> TurnStreamChunk:
        step.completed_at = events.now()
        state.turn.steps.append(step)
        await self.store.put_progress(plan.agent_id, state.turn)
        return events.step_complete(step)

    async def _check_calls(
        self, plan: TurnPlan, state: _State, calls: list[ToolCall]
    ) -> AsyncGenerator[TurnStreamChunk, None]:
        """Each call passes its tool's input shields before it runs or goes to the app."""
        for tool_call in calls:
            shields = plan.toolbox.shields_of(tool_call.tool_name).input
            checked: list[Message] = [_call_message(tool_call)]
            async with aclosing(self._tool_shields(plan, state, shields, checked, "input", tool_call)) as phase:
                async for chunk in phase:
                    yield chunk
            if state.output is not None:
                return

    async def _check_results(
        self, plan: TurnPlan, state: _State, messages: Sequence[Message]
    ) -> AsyncGenerator[TurnStreamChunk, None]:
        """Each tool result passes its tool's output shields before the model sees it."""
        for result in messages:
            if not isinstance(result, ToolResponseMessage):
                continue
            shields = plan.toolbox.shields_of(result.tool_name).output
            async with aclosing(self._tool_shields(plan, state, shields, [result], "output", result)) as phase:
                async for chunk in phase:
                    yield chunk
            if state.output is not None:
                return

    def _tool_shields(
        self,
        plan: TurnPlan,
        state: _State,
        shields: list[str],
        messages: list[Message],
        direction: str,
        subject: ToolCall | ToolResponseMessage,
    ) -> AsyncGenerator[TurnStreamChunk, None]:
        metadata: dict[str, object] = {"tool_name": subject.tool_name, "call_id": subject.call_id}
        return self._shields(plan, state, shields, messages, f"tool-{direction}", metadata)

    async def _shields(
        self,
        plan: TurnPlan,
        state: _State,
        shields: list[str],
        messages: list[Message],
        touchpoint: str,
        metadata: dict[str, object] | None = None,
    ) -> AsyncGenerator[TurnStreamChunk, None]:
        if not shields:
            return
        step_id, started = random_id(), events.now()
        yield events.step_start(StepType.shield_call, step_id, {"touchpoint": touchpoint, **(metadata or {})})
        violation: SafetyViolation | None = None
        for shield_id in shields:
            assert self.safety is not None  # checked when the agent was created
            response = await self.safety.run_shield(RunShieldRequest(shield_id=shield_id, messages=messages))
            if response.violation is not None:
                violation = response.violation
                violation.metadata.setdefault("shield_id", shield_id)
                if violation.violation_level == "error":
                    break
        step = ShieldCallStep(turn_id=state.turn.turn_id, step_id=step_id, started_at=started, violation=violation)
        yield await self._complete(plan, state, step)
        if violation is not None and violation.violation_level == "error":
            state.output = CompletionMessage(content=violation.user_message or REFUSAL)

    async def _retrieve(self, plan: TurnPlan, state: _State) -> AsyncGenerator[TurnStreamChunk, None]:
        request, session, memory_tool = plan.request, plan.session, plan.toolbox.memory
        if not request.attachments and session.memory_bank_id is None and memory_tool is None:
            return
        generator = memory_tool.query_generator_config if memory_tool else DefaultQueryGeneratorConfig()
        query = await generate_query(generator, plan.history, request.messages, self.inference)
        input_shields = memory_tool.input_shields if memory_tool else []
        output_shields = memory_tool.output_shields if memory_tool else []
        metadata: dict[str, object] = {"tool_name": "memory"}
        query_message: list[Message] = [UserMessage(content=query)]
        async with aclosing(self._shields(plan, state, input_shields, query_message, "tool-input", metadata)) as phase:
            async for chunk in phase:
                yield chunk
        if state.output is not None:
            return
        step_id, started = random_id(), events.now()
        yield events.step_start(StepType.memory_retrieval, step_id)
        if request.attachments:
            if session.memory_bank_id is None:
                session.memory_bank_id = await self.retriever.create_session_bank(session.session_id, session.owner)
                await self.store.put_session(plan.agent_id, session)
            await self.retriever.insert_attachments(session.memory_bank_id, state.turn.turn_id, request.attachments)
        banks = list(memory_tool.memory_bank_configs) if memory_tool else []
        if session.memory_bank_id is not None:
            banks.append(MemoryBankConfig(bank_id=session.memory_bank_id))
        max_chunks = memory_tool.max_chunks if memory_tool else DEFAULT_MAX_CHUNKS
        max_tokens = memory_tool.max_tokens_in_context if memory_tool else DEFAULT_MAX_CONTEXT_TOKENS
        context = await self.retriever.retrieve(banks, query, max_chunks, max_tokens)
        step = MemoryRetrievalStep(
            turn_id=state.turn.turn_id,
            step_id=step_id,
            started_at=started,
            memory_bank_ids=[bank.bank_id for bank in banks],
            inserted_context=list(context) if context else "",
        )
        yield await self._complete(plan, state, step)
        if context:
            retrieved: list[Message] = [UserMessage(content=list(context))]
            async with aclosing(
                self._shields(plan, state, output_shields, retrieved, "tool-output", metadata)
            ) as phase:
                async for chunk in phase:
                    yield chunk
            if state.output is not None:
                return
        last = state.messages[-1]
        if context and isinstance(last, UserMessage):
            # The app's own context stays; the retrieved one comes after it.
            state.messages[-1] = last.model_copy(update={"context": [*_items(last.context), *context]})

    async def _infer(self, plan: TurnPlan, state: _State) -> AsyncGenerator[TurnStreamChunk, None]:
        config, toolbox = plan.config, plan.toolbox
        step_id, started = random_id(), events.now()
        yield events.step_start(StepType.inference, step_id)
        request = ChatCompletionRequest(
            model_id=config.model,
            messages=state.messages,
            sampling_params=config.sampling_params,
            tools=toolbox.definitions,
            tool_choice=config.tool_choice,
            tool_prompt_format=config.tool_prompt_format if toolbox.definitions else None,
            stream=True,
        )
        text: list[str] = []
        calls: list[ToolCall] = []
        stop_reason: StopReason | None = None
        stream = self.inference.chat_completion_stream(request)
        async with aclosing(stream):
            async for chunk in stream:
                event = chunk.event
                delta = event.delta
                if isinstance(delta, ToolCallDelta):
                    if delta.parse_status == ToolCallParseStatus.success and isinstance(delta.content, ToolCall):
                        calls.append(delta.content)
                    yield events.tool_call_progress(StepType.inference, step_id, delta)
                elif delta:
                    text.append(delta)
                    yield events.text_progress(step_id, delta)
                if event.stop_reason is not None:
                    stop_reason = event.stop_reason
        message = CompletionMessage(
            content="".join(text), stop_reason=stop_reason or StopReason.end_of_turn, tool_calls=calls
        )
        state.messages.append(message)
        step = InferenceStep(turn_id=state.turn.turn_id, step_id=step_id, started_at=started, model_response=message)
        yield await self._complete(plan, state, step)

    async def _run_tools(
        self, plan: TurnPlan, state: _State, calls: list[ToolCall]
    ) -> AsyncGenerator[TurnStreamChunk, None]:
        step_id, started = random_id(), events.now()
        yield events.step_start(StepType.tool_execution, step_id)
        for call in calls:
            yield events.tool_call_running(step_id, call)
        outcomes = await asyncio.gather(*(_run_tool(plan.toolbox, call) for call in calls))
        responses = [
            ToolResponse(call_id=call.call_id, tool_name=call.tool_name, content=outcome.content)
            for call, outcome in zip(calls, outcomes, strict=True)
        ]
        for outcome in outcomes:
            state.attachments.extend(outcome.attachments)
        state.messages.extend(tool_message(response) for response in responses)
        step = ToolExecutionStep(
            turn_id=state.turn.turn_id,
            step_id=step_id,
            started_at=started,
            tool_calls=calls,
            tool_responses=responses,
        )
        yield await self._complete(plan, state, step)

    async def _forget_progress(self, plan: TurnPlan, turn: Turn) -> None:
        try:
            await self.store.drop_progress(plan.agent_id, turn.session_id, turn.turn_id)
        except Exception:  # the turn already failed or was abandoned; its record is best effort
            log.warning("could not remove the progress record of turn %s", turn.turn_id, exc_info=True)


def _items(content: InterleavedContent | None) -> list[InterleavedContentItem]:
    if content is None:
        return []
    if isinstance(content, str):
        return [TextContentItem(text=content)]
    return list(content) if isinstance(content, list) else [content]


def _call_message(call: ToolCall) -> CompletionMessage:
    """A tool call as a shield sees it: the call, with its name and arguments as the text, since
    shields read a message's content."""
    text = f"{call.tool_name}({json.dumps(call.arguments, ensure_ascii=False)})"
    return CompletionMessage(content=text, stop_reason=StopReason.end_of_message, tool_calls=[call])


async def _run_tool(toolbox: Toolbox, call: ToolCall) -> ToolOutcome:
    """A tool that cannot run (no sandbox here, a bad key) answers the model with the reason."""
    try:
        return await toolbox.run(call)
    except StackError as e:
        return ToolOutcome(f"The tool {call.tool_name} failed: {e.message}")
