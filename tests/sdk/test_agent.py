"""The Agent helper and the EventLogger against recorded v0.0.63 agent turns (MockTransport)."""

from __future__ import annotations

import io
import json
from typing import Any, Literal

import httpx
import pytest

from llama_stack.apis.agents import TurnStreamChunk
from llama_stack.apis.common import ToolResponseMessage
from llama_stack.client import Agent, EventLogger, LlamaStackClient, TooManyToolRounds, client_tool
from tests.sdk import recorded_turns as recorded


class AgentsServer:
    """Serves agents/create, session/create and turn/create from a queue of recorded turns."""

    def __init__(self, *turns: list[dict[str, Any]]) -> None:
        self.turns = list(turns)
        self.bodies: dict[str, list[dict[str, Any]]] = {}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content or b"{}")
        self.bodies.setdefault(request.url.path, []).append(body)
        if request.url.path == "/alpha/agents/create":
            return httpx.Response(200, json={"agent_id": "agent-1"})
        if request.url.path == "/alpha/agents/session/create":
            return httpx.Response(200, json={"session_id": "sess-1"})
        assert request.url.path == "/alpha/agents/turn/create"
        events = self.turns.pop(0)
        if body.get("stream"):
            return httpx.Response(200, content=recorded.sse(events), headers={"content-type": "text/event-stream"})
        return httpx.Response(200, json=recorded.final_turn(events))

    def turn_messages(self) -> list[list[dict[str, Any]]]:
        return [body["messages"] for body in self.bodies["/alpha/agents/turn/create"]]


def client_for(server: AgentsServer) -> LlamaStackClient:
    return LlamaStackClient("http://stack", http_client=httpx.Client(transport=httpx.MockTransport(server)))


def get_weather(city: str, unit: Literal["celsius", "fahrenheit"] = "celsius", days: int | None = None) -> str:
    """Get the current weather in a city.

    Looks it up in a very reliable source.

    Args:
        city: The city to look up,
            for example "Paris".
        unit (str): Either "celsius" or "fahrenheit".
        days: How many days of forecast.

    Returns:
        A short description.
    """
    if city == "Atlantis":
        raise ValueError("no such city")
    return "18°C and sunny" if days is None else f"sunny for {days} days"


def test_a_function_becomes_a_tool_definition() -> None:
    tool = client_tool(get_weather)
    definition = tool.definition.model_dump(exclude_defaults=True)
    assert definition == {
        "function_name": "get_weather",
        "description": "Get the current weather in a city.",
        "parameters": {
            "city": {"param_type": "str", "description": 'The city to look up, for example "Paris".'},
            "unit": {
                "param_type": "str",
                "description": 'Either "celsius" or "fahrenheit".',
                "required": False,
                "default": "celsius",
            },
            "days": {"param_type": "int", "description": "How many days of forecast.", "required": False},
        },
    }


def test_a_tool_without_a_docstring_is_refused() -> None:
    def nameless(x: int) -> int:
        return x

    with pytest.raises(ValueError, match="'nameless' needs a docstring"):
        client_tool(nameless)


def test_the_agent_is_created_with_its_client_tools() -> None:
    server = AgentsServer()
    agent = Agent(client_for(server), model="Llama3.2-3B-Instruct", tools=[get_weather], input_shields=["guard"])
    config = server.bodies["/alpha/agents/create"][0]["agent_config"]
    assert agent.agent_id == "agent-1"
    assert config["model"] == "Llama3.2-3B-Instruct" and config["input_shields"] == ["guard"]
    assert config["tools"][0]["type"] == "function_call"
    assert config["tools"][0]["function_name"] == "get_weather"


def test_a_misspelt_agent_option_is_refused() -> None:
    with pytest.raises(TypeError, match="input_shield"):
        Agent(client_for(AgentsServer()), model="m", input_shield=["guard"])


def test_a_client_tool_call_is_run_and_its_result_sent_back_as_a_new_turn() -> None:
    server = AgentsServer(recorded.weather_call(), recorded.answer())
    calls: list[str] = []

    def get_weather(city: str) -> str:
        """Get the current weather in a city."""
        calls.append(city)
        return "18°C and sunny"

    agent = Agent(client_for(server), model="m", tools=[get_weather])
    session_id = agent.create_session("trip")
    events = list(agent.create_turn("What is the weather in Paris?", session_id))

    assert calls == ["Paris"]
    first, second = server.turn_messages()
    assert first == [{"role": "user", "content": "What is the weather in Paris?"}]
    assert second == [{"role": "ipython", "call_id": "call-7", "tool_name": "get_weather", "content": "18°C and sunny"}]
    results = [e for e in events if isinstance(e, ToolResponseMessage)]
    assert [r.content for r in results] == ["18°C and sunny"]
    chunks = [e for e in events if isinstance(e, TurnStreamChunk)]
    assert [c.event.payload.event_type for c in chunks].count("turn_complete") == 2
    text = "".join(getattr(c.event.payload, "text_delta", None) or "" for c in chunks)
    assert text == "It is 18°C and sunny in Paris."


def test_tool_arguments_are_coerced_to_the_type_hints() -> None:
    server = AgentsServer(recorded.weather_call(city="Paris", days="3"), recorded.answer())
    agent = Agent(client_for(server), model="m", tools=[get_weather])
    agent.create_session("s")
    list(agent.create_turn("weather?"))
    assert server.turn_messages()[1][0]["content"] == "sunny for 3 days"


def test_a_failing_tool_reports_its_error_as_the_result() -> None:
    server = AgentsServer(recorded.weather_call(city="Atlantis"), recorded.answer("Sorry, I could not find it."))
    agent = Agent(client_for(server), model="m", tools=[get_weather])
    agent.create_session("s")
    events = list(agent.create_turn("What is the weather in Atlantis?"))
    sent = server.turn_messages()[1][0]
    assert sent["role"] == "ipython" and sent["content"] == "error: ValueError: no such city"
    assert isinstance(events[-1], TurnStreamChunk)


def test_an_unknown_tool_is_answered_with_an_error() -> None:
    server = AgentsServer(recorded.weather_call(tool_name="book_flight", to="Rome"), recorded.answer())
    agent = Agent(client_for(server), model="m", tools=[get_weather])
    agent.create_session("s")
    list(agent.create_turn("Fly me to Rome"))
    assert server.turn_messages()[1][0]["content"] == "error: unknown tool `book_flight` (client tools: get_weather)"


def test_a_whole_turn_runs_the_tools_and_returns_the_final_turn() -> None:
    server = AgentsServer(recorded.weather_call(), recorded.answer())
    agent = Agent(client_for(server), model="m", tools=[get_weather])
    agent.create_session("s")
    turn = agent.create_turn([{"role": "user", "content": "What is the weather in Paris?"}], stream=False)
    assert turn.output_message.content == "It is 18°C and sunny in Paris."
    assert [b["stream"] for b in server.bodies["/alpha/agents/turn/create"]] == [False, False]


def test_an_agent_that_never_stops_calling_tools_is_cut_off() -> None:
    server = AgentsServer(*[recorded.weather_call() for _ in range(3)])
    agent = Agent(client_for(server), model="m", tools=[get_weather], max_tool_rounds=2)
    agent.create_session("s")
    with pytest.raises(TooManyToolRounds):
        list(agent.create_turn("weather?"))
    assert len(server.turn_messages()) == 3


def test_a_turn_needs_a_session() -> None:
    agent = Agent(client_for(AgentsServer()), model="m")
    with pytest.raises(Exception, match="create a session first"):
        agent.create_turn("hi", stream=False)


WEATHER_LOG = """\
shield_call> no violation
inference> {"type": "function", "name": "get_weather", "parameters": {"city": "Paris"}}
tool_call> get_weather({"city": "Paris"})
client_tool> get_weather -> 18°C and sunny
inference> It is 18°C and sunny in Paris.
shield_call> no violation
"""


def test_event_logger_prints_a_turn_with_a_client_tool(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    server = AgentsServer(recorded.weather_call(), recorded.answer())
    agent = Agent(client_for(server), model="m", tools=[get_weather])
    agent.create_session("s")
    out = io.StringIO()  # not a terminal: no colour
    EventLogger(file=out).print(agent.create_turn("What is the weather in Paris?"))
    assert out.getvalue() == WEATHER_LOG


def test_event_logger_prints_memory_builtin_tools_and_violations() -> None:
    server = AgentsServer(recorded.rag_with_search())
    out = io.StringIO()
    client = client_for(server)
    EventLogger(file=out).print(
        client.agents.turn.create(
            agent_id="a", session_id="s", messages=[{"role": "user", "content": "q"}], stream=True
        )
    )
    assert out.getvalue() == (
        "memory_retrieval> fetched 57 characters from travel-docs\n"
        'tool_call> brave_search({"query": "Paris mayor"})\n'
        'tool_execution> brave_search({"query": "Paris mayor"})\n'
        "tool_execution> brave_search -> Anne Hidalgo\n"
        "inference> Anne Hidalgo.\n"
        "shield_call> error: I can't answer that.\n"
    )


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_event_logger_colours_a_terminal_unless_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    tty = Terminal()
    EventLogger(file=tty).print(TurnStreamChunk.model_validate(e) for e in recorded.rag_with_search())
    assert "\033[31mshield_call> error: I can't answer that.\033[0m\n" in tty.getvalue()

    monkeypatch.setenv("NO_COLOR", "1")
    plain = Terminal()
    EventLogger(file=plain).print(TurnStreamChunk.model_validate(e) for e in recorded.rag_with_search())
    assert "\033[" not in plain.getvalue() and "shield_call> error" in plain.getvalue()

    forced = io.StringIO()
    EventLogger(file=forced, color=True).print(TurnStreamChunk.model_validate(e) for e in recorded.rag_with_search())
    assert "\033[36mmemory_retrieval>" in forced.getvalue()
