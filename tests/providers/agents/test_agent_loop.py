"""The agent loop driven by a scripted model: steps, events, tools, iterations, client tools."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import cast

import pytest

from llama_stack.apis.agents import (
    CodeInterpreterToolDefinition,
    CreateTurnRequest,
    FunctionCallToolDefinition,
    FunctionParamDefinition,
    InferenceStep,
    StepRef,
    ToolExecutionStep,
    TurnRef,
    TurnStreamChunk,
)
from llama_stack.apis.common import (
    CompletionMessage,
    ImageContentItem,
    StopReason,
    SystemMessage,
    ToolPromptFormat,
    ToolResponseMessage,
    UserMessage,
    content_text,
)
from llama_stack.apis.errors import NotFound
from llama_stack.distribution.provider import Api
from tests.providers.agents.conftest import StackFactory
from tests.providers.agents.fakes import (
    TINY_PNG_PROGRAM,
    call,
    event_names,
    final_turn,
    new_session,
    run_turn,
    say,
    scripted_llm,
    step_types,
    user,
)

CODE = CodeInterpreterToolDefinition()
WEATHER = FunctionCallToolDefinition(
    function_name="get_weather",
    description="The weather in a city",
    parameters={"city": FunctionParamDefinition(param_type="str", description="city name")},
)


async def test_a_plain_answer_streams_as_one_inference_step(agent_stack: StackFactory) -> None:
    async with agent_stack() as stack:
        agents, llm = stack.routers[Api.agents], scripted_llm(stack)
        agent_id, session_id = await new_session(agents)
        chunks = await run_turn(agents, agent_id, session_id, user("hello there"))

        assert event_names(chunks) == [
            "turn_start",
            "step_start:inference",
            "step_progress:inference",
            "step_complete:inference",
            "turn_complete",
        ]
        deltas = [c.event.payload.text_delta for c in chunks if c.event.payload.event_type == "step_progress"]
        assert "".join(d or "" for d in deltas) == "echo: hello there"
        turn = final_turn(chunks)
        assert turn.output_message.content == "echo: hello there"
        assert turn.output_message.stop_reason == StopReason.end_of_turn
        assert turn.completed_at is not None and turn.started_at <= turn.completed_at
        sent = llm.requests[0].messages
        assert isinstance(sent[0], SystemMessage) and sent[0].content == "You are a test agent."
        assert content_text(sent[-1].content) == "hello there"

        stored = await agents.get_turn(TurnRef(agent_id=agent_id, session_id=session_id, turn_id=turn.turn_id))
        assert stored == turn
        step = turn.steps[0]
        ref = StepRef(agent_id=agent_id, session_id=session_id, turn_id=turn.turn_id, step_id=step.step_id)
        assert (await agents.get_step(ref)).step == step


async def test_a_builtin_tool_runs_between_two_inference_steps(agent_stack: StackFactory) -> None:
    async with agent_stack() as stack:
        agents, llm = stack.routers[Api.agents], scripted_llm(stack)
        llm.will(call("code_interpreter", code="print(6 * 7)"), say("It is 42."))
        agent_id, session_id = await new_session(agents, tools=[CODE])
        chunks = await run_turn(agents, agent_id, session_id, user("what is six times seven?"))

        turn = final_turn(chunks)
        assert step_types(turn) == ["inference", "tool_execution", "inference"]
        assert "step_progress:tool_execution" in event_names(chunks)
        tool_step = turn.steps[1]
        assert isinstance(tool_step, ToolExecutionStep)
        result = content_text(tool_step.tool_responses[0].content)
        assert "[stdout]\n42\n[/stdout]" in result
        assert "[isolation]" in result and "completed with exit code 0" in result
        assert turn.output_message.content == "It is 42."
        # The second inference saw the tool's answer as an ipython message.
        assert [tool.tool_name for tool in llm.requests[0].tools] == ["code_interpreter"]
        answer = llm.requests[1].messages[-1]
        assert isinstance(answer, ToolResponseMessage) and "42" in content_text(answer.content)


async def test_images_a_program_makes_are_attached_to_the_answer(agent_stack: StackFactory) -> None:
    async with agent_stack() as stack:
        agents, llm = stack.routers[Api.agents], scripted_llm(stack)
        llm.will(call("code_interpreter", code=TINY_PNG_PROGRAM), say("Here is the plot."))
        agent_id, session_id = await new_session(agents, tools=[CODE])
        turn = final_turn(await run_turn(agents, agent_id, session_id, user("plot it")))

        assert len(turn.output_attachments) == 1
        attachment = turn.output_attachments[0]
        assert attachment.mime_type == "image/png" and isinstance(attachment.content, ImageContentItem)
        tool_step = turn.steps[1]
        assert isinstance(tool_step, ToolExecutionStep)
        content = tool_step.tool_responses[0].content
        assert isinstance(content, list) and isinstance(content[1], ImageContentItem)
        # The model gets text only: the image goes to the user.
        seen = content_text(llm.requests[1].messages[-1].content)
        assert "saved" in seen and "[image: attached to the answer]" in seen


async def test_max_infer_iters_bounds_the_inference_steps(agent_stack: StackFactory) -> None:
    async with agent_stack() as stack:
        agents, llm = stack.routers[Api.agents], scripted_llm(stack)
        llm.will(*[call("code_interpreter", code="print('again')")] * 5)
        agent_id, session_id = await new_session(agents, tools=[CODE], max_infer_iters=2)
        turn = final_turn(await run_turn(agents, agent_id, session_id, user("loop forever")))

        assert step_types(turn) == ["inference", "tool_execution", "inference"]
        assert len(llm.requests) == 2
        # The unanswered builtin call stays visible, marked out of budget, so the official Agent
        # helper does not take it for a client tool call.
        assert turn.output_message.stop_reason == StopReason.out_of_tokens
        assert turn.output_message.tool_calls[0].tool_name == "code_interpreter"


async def test_a_client_tool_call_ends_the_turn_and_an_ipython_turn_continues(agent_stack: StackFactory) -> None:
    async with agent_stack() as stack:
        agents, llm = stack.routers[Api.agents], scripted_llm(stack)
        agent_id, session_id = await new_session(agents, tools=[CODE, WEATHER])
        first = final_turn(await run_turn(agents, agent_id, session_id, user("what is the weather in Paris?")))

        assert step_types(first) == ["inference"]
        (weather_call,) = first.output_message.tool_calls
        assert weather_call.tool_name == "get_weather" and weather_call.arguments == {"city": "Paris"}
        offered = {tool.tool_name: tool for tool in llm.requests[0].tools}
        assert offered["get_weather"].description == "The weather in a city"
        assert offered["get_weather"].parameters is not None and "city" in offered["get_weather"].parameters

        result = ToolResponseMessage(call_id=weather_call.call_id, tool_name="get_weather", content="sunny, 21 C")
        second = final_turn(await run_turn(agents, agent_id, session_id, result))
        assert second.output_message.content == "tool said: sunny, 21 C"
        roles = [m.role for m in llm.requests[1].messages]
        assert roles == ["system", "user", "assistant", "ipython"]
        assistant = llm.requests[1].messages[2]
        assert isinstance(assistant, CompletionMessage) and assistant.tool_calls == [weather_call]


@pytest.mark.parametrize("tool_format", list(ToolPromptFormat))
async def test_each_tool_prompt_format_reaches_the_model(agent_stack: StackFactory, tool_format: str) -> None:
    async with agent_stack() as stack:
        agents, llm = stack.routers[Api.agents], scripted_llm(stack)
        llm.will(call("get_weather", call_id=f"{tool_format}-1", city="Oslo"))
        agent_id, session_id = await new_session(agents, tools=[WEATHER], tool_prompt_format=tool_format)
        chunks = await run_turn(agents, agent_id, session_id, user("weather?"))

        assert llm.requests[0].tool_prompt_format == tool_format
        deltas = [c.event.payload.tool_call_delta for c in chunks if c.event.payload.event_type == "step_progress"]
        assert [d.parse_status for d in deltas if d is not None] == ["started", "success"]
        assert final_turn(chunks).output_message.tool_calls[0].call_id == f"{tool_format}-1"


async def test_a_running_turn_shows_its_completed_steps(agent_stack: StackFactory) -> None:
    async with agent_stack() as stack:
        agents, llm = stack.routers[Api.agents], scripted_llm(stack)
        llm.will(call("code_interpreter", code="print(1)"), say("done"))
        agent_id, session_id = await new_session(agents, tools=[CODE])
        request = CreateTurnRequest(agent_id=agent_id, session_id=session_id, messages=[UserMessage(content="go")])
        request_stream = cast(AsyncGenerator[TurnStreamChunk, None], agents.create_turn(request))
        turn_id = ""
        async for chunk in request_stream:
            payload = chunk.event.payload
            if payload.event_type == "turn_start":
                turn_id = payload.turn_id
            if payload.event_type == "step_complete" and payload.step_type == "tool_execution":
                break
        running = await agents.get_turn(TurnRef(agent_id=agent_id, session_id=session_id, turn_id=turn_id))
        assert running.completed_at is None
        assert step_types(running) == ["inference", "tool_execution"]
        assert isinstance(running.steps[0], InferenceStep)
        await request_stream.aclose()


async def test_a_turn_abandoned_mid_tool_stops_its_program_and_frees_the_session(agent_stack: StackFactory) -> None:
    async with agent_stack() as stack:
        agents, llm = stack.routers[Api.agents], scripted_llm(stack)
        marker = f"abandoned-{uuid.uuid4().hex}"
        llm.will(call("code_interpreter", code=f"import time\n# {marker}\ntime.sleep(60)\n"))
        agent_id, session_id = await new_session(agents, tools=[CODE])
        tool_running = asyncio.Event()
        turn_ids: list[str] = []

        async def client() -> None:
            request = CreateTurnRequest(agent_id=agent_id, session_id=session_id, messages=[user("sleep")])
            async for chunk in agents.create_turn(request):
                payload = chunk.event.payload
                if payload.event_type == "turn_start":
                    turn_ids.append(payload.turn_id)
                if payload.event_type == "step_progress" and payload.step_type == "tool_execution":
                    tool_running.set()

        # The server cancels the stream's task when the client disconnects.
        task = asyncio.create_task(client())
        await asyncio.wait_for(tool_running.wait(), timeout=10)
        assert await asyncio.to_thread(program_running, marker, True, 10.0), "the program should be running"
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

        assert not await asyncio.to_thread(program_running, marker, False, 5.0)
        with pytest.raises(NotFound):
            await agents.get_turn(TurnRef(agent_id=agent_id, session_id=session_id, turn_id=turn_ids[0]))
        # The session is free for the next turn.
        turn = final_turn(await asyncio.wait_for(run_turn(agents, agent_id, session_id, user("hi")), timeout=10))
        assert turn.output_message.content == "echo: hi"


def program_running(marker: str, wanted: bool, timeout_s: float) -> bool:
    """Whether a sandboxed program holding `marker` runs, once it is as `wanted` or time is up."""
    deadline = time.perf_counter() + timeout_s
    while True:
        running = False
        for entry in Path("/proc").iterdir():
            try:
                running = running or marker.encode() in (entry / "cwd" / "main.py").read_bytes()
            except OSError:
                continue
        if running == wanted or time.perf_counter() >= deadline:
            return running
        time.sleep(0.05)


async def test_a_client_leaving_mid_answer_closes_the_model_stream_at_once(agent_stack: StackFactory) -> None:
    async with agent_stack() as stack:
        agents, llm = stack.routers[Api.agents], scripted_llm(stack)
        llm.will(say("one two three four five six"))
        agent_id, session_id = await new_session(agents)
        request = CreateTurnRequest(agent_id=agent_id, session_id=session_id, messages=[user("talk")])
        stream = cast(AsyncGenerator[TurnStreamChunk, None], agents.create_turn(request))
        async for chunk in stream:
            if getattr(chunk.event.payload, "text_delta", None):
                break
        await stream.aclose()  # what the server does when the client disconnects
        assert llm.abandoned_streams == 1
