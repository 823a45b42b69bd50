"""The official llama-stack-client 0.0.63 Agent helper and EventLogger against a live server:
a multi-turn agent with a builtin tool (code_interpreter), a client tool, shields and RAG."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from llama_stack_client import LlamaStackClient, NotFoundError
from llama_stack_client.lib.agents.agent import Agent
from llama_stack_client.lib.agents.custom_tool import CustomTool
from llama_stack_client.lib.agents.event_logger import EventLogger
from llama_stack_client.types import ToolResponseMessage
from llama_stack_client.types.tool_param_definition_param import ToolParamDefinitionParam

from tests.live import LiveServer, live_server
from tests.providers.agents.fakes import EMBEDDER, MODEL, SHIELD, install, run_config

install()


class WeatherTool(CustomTool):
    """A client tool as the 0.0.63 client defines one: the app runs it, not the server."""

    def get_name(self) -> str:
        return "get_weather"

    def get_description(self) -> str:
        return "The weather in a city"

    def get_params_definition(self) -> dict[str, ToolParamDefinitionParam]:
        return {"city": ToolParamDefinitionParam(param_type="str", description="a city", required=True)}

    def run(self, messages: list[Any]) -> list[Any]:
        call = messages[0].tool_calls[0]
        content = f"sunny in {call.arguments['city']}"
        return [ToolResponseMessage(call_id=call.call_id, tool_name=call.tool_name, content=content, role="ipython")]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(run_config(tmp_path_factory.mktemp("agents-e2e"))) as live:
        yield live


def agent_config(**extra: Any) -> Any:
    return {
        "model": MODEL,
        "instructions": "You are a helpful assistant.",
        "enable_session_persistence": True,
        "max_infer_iters": 5,
        "sampling_params": {"strategy": "greedy", "temperature": 0.0, "max_tokens": 256},
        **extra,
    }


def logged(events: Any) -> tuple[list[str], list[Any]]:
    """The EventLogger's lines, and the raw items the Agent helper yielded."""
    items = list(events)
    logger: Any = EventLogger()
    return [str(line) for line in logger.log(items)], items


def test_a_multi_turn_agent_with_a_builtin_tool_a_client_tool_and_shields(server: LiveServer) -> None:
    client = LlamaStackClient(base_url=server.base_url)
    weather = WeatherTool()
    config = agent_config(
        tools=[{"type": "code_interpreter"}, weather.get_tool_definition()],
        tool_choice="auto",
        tool_prompt_format="json",
        input_shields=[SHIELD],
        output_shields=[SHIELD],
    )
    agent: Any = Agent(client, config, custom_tools=(weather,))  # the helper types its ids as int
    session_id: Any = agent.create_session("e2e")

    def turn(*messages: Any, **options: Any) -> tuple[list[str], list[Any]]:
        return logged(agent.create_turn(messages=list(messages), session_id=session_id, **options))

    # 1. A builtin tool runs on the server, in the sandbox.
    lines, items = turn({"role": "user", "content": "run: print(6 * 7)"})
    tool_lines = [line for line in lines if line.startswith("tool_execution>")]
    assert tool_lines[0] == "tool_execution> Tool:code_interpreter Args:{'code': 'print(6 * 7)'}"
    assert "[stdout]\n42\n[/stdout]" in tool_lines[1] and "[isolation]" in tool_lines[1]
    assert lines.count("shield_call> No Violation") == 2
    assert "tool said: [isolation]" in "".join(lines)
    assert items[-1].event.payload.turn.output_message.content.startswith("tool said: [isolation]")

    # 2. A client tool ends the turn; the helper runs it and yields its result.
    lines, items = turn({"role": "user", "content": "what is the weather in Paris?"})
    result = items[-1]
    assert isinstance(result, ToolResponseMessage) and result.content == "sunny in Paris"
    assert lines[-1] == "CustomTool> sunny in Paris"

    # 3. The app sends that result back as an ipython turn, and the model answers with it.
    lines, items = turn(result)
    final = items[-1].event.payload
    assert final.event_type == "turn_complete"
    assert final.turn.output_message.content == "tool said: sunny in Paris"
    assert final.turn.input_messages[0].role == "ipython"

    # 4. A shield violation ends the turn with the shield's message.
    lines, items = turn({"role": "user", "content": "something forbidden"})
    assert any(line.startswith("shield_call> ") and "I can't discuss 'forbidden'." in line for line in lines)
    assert items[-1].event.payload.turn.output_message.content == "I can't discuss 'forbidden'."

    # 5. Non-streaming turns return the Turn; sessions, turns and steps read back.
    turn_object = client.agents.turn.create(
        agent_id=agent.agent_id,
        session_id=session_id,
        messages=[{"role": "user", "content": "no stream"}],
        stream=False,
    )
    assert turn_object.output_message.content == "echo: no stream"
    session = client.agents.session.retrieve(agent_id=agent.agent_id, session_id=session_id)
    assert len(session.turns) == 5
    assert [t.turn_id for t in session.turns][-1] == turn_object.turn_id
    one = client.agents.session.retrieve(
        agent_id=agent.agent_id, session_id=session_id, turn_ids=[session.turns[0].turn_id]
    )
    assert [t.turn_id for t in one.turns] == [session.turns[0].turn_id]
    first = client.agents.turn.retrieve(
        agent_id=agent.agent_id, session_id=session_id, turn_id=session.turns[0].turn_id
    )
    tool_step = next(s for s in first.steps if s.step_type == "tool_execution")
    step = client.agents.steps.retrieve(
        agent_id=agent.agent_id, session_id=session_id, turn_id=first.turn_id, step_id=tool_step.step_id
    )
    assert step.step.tool_calls[0].tool_name == "code_interpreter"

    # A turn the server refuses is refused with a status code, before any event.
    with pytest.raises(NotFoundError, match="Session 'nope'"):
        client.agents.turn.create(
            agent_id=agent.agent_id, session_id="nope", messages=[{"role": "user", "content": "x"}], stream=True
        )

    client.agents.session.delete(agent_id=agent.agent_id, session_id=session_id)
    with pytest.raises(NotFoundError):
        client.agents.session.retrieve(agent_id=agent.agent_id, session_id=session_id)
    client.agents.delete(agent_id=agent.agent_id)


def test_a_rag_agent_over_a_memory_bank_and_attached_documents(server: LiveServer) -> None:
    client = LlamaStackClient(base_url=server.base_url)
    params: Any = {"memory_bank_type": "vector", "embedding_model": EMBEDDER, "chunk_size_in_tokens": 64}
    client.memory_banks.register(memory_bank_id="handbook", params=params)
    document: Any = {"document_id": "hr-1", "content": "Holidays are granted by Maria. Parking is free."}
    client.memory.insert(bank_id="handbook", documents=[document])
    memory_tool = {
        "type": "memory",
        "memory_bank_configs": [{"bank_id": "handbook", "type": "vector"}],
        "query_generator_config": {"type": "default", "sep": " "},
        "max_tokens_in_context": 512,
        "max_chunks": 5,
    }
    agent: Any = Agent(client, agent_config(tools=[memory_tool]))
    session_id: Any = agent.create_session("rag")

    lines, items = logged(
        agent.create_turn(messages=[{"role": "user", "content": "who grants holidays?"}], session_id=session_id)
    )
    assert any(line.startswith("memory_retrieval> fetched") and "['handbook']" in line for line in lines)
    answer = items[-1].event.payload.turn.output_message.content
    assert "Holidays are granted by Maria" in answer and "Parking" not in answer

    attachment = {"content": "The office wifi password is tulip42. Lunch is at noon.", "mime_type": "text/plain"}
    logged(
        agent.create_turn(
            messages=[{"role": "user", "content": "keep this"}], attachments=[attachment], session_id=session_id
        )
    )
    lines, items = logged(
        agent.create_turn(messages=[{"role": "user", "content": "what is the wifi password?"}], session_id=session_id)
    )
    assert any(f"session-{session_id}" in line for line in lines if line.startswith("memory_retrieval>"))
    assert "tulip42" in items[-1].event.payload.turn.output_message.content
    session = client.agents.session.retrieve(agent_id=agent.agent_id, session_id=session_id)
    assert session.memory_bank is not None and session.memory_bank.identifier == f"session-{session_id}"
