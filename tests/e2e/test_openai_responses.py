"""/v1/responses and /v1/conversations driven by the official `openai` SDK over a real server:
text and streamed answers, function-tool round trips, chains, file_search over vector stores
(real MiniLM, recall@3 on the labelled set), a real MCP server (FastMCP) with approvals, shields
as refusals, conversations, storage, and two tenants. The model is a scripted tool caller
(tests/tool_caller.py): these tests prove the loop's plumbing, not a model's judgement."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from llama_stack.apis.common import content_text
from llama_stack.apis.inference import JsonSchemaResponseFormat
from llama_stack.distribution.registry import install_provider
from tests.live import LiveServer, live_server
from tests.mcp_server import McpTarget, mcp_server
from tests.providers.memory.retrieval_set import DOCUMENTS, QUESTIONS
from tests.providers.safety.stacks import install_safety_providers
from tests.tool_caller import TOOL_CALLER_SPEC, ToolCaller, agent_stack_config

install_provider(TOOL_CALLER_SPEC)
install_safety_providers()

KEY_A = "responses-tenant-a-0123456789"
KEY_B = "responses-tenant-b-0123456789"
WEATHER: Any = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def run_config(state: Path, allow_loopback: bool) -> dict[str, Any]:
    server = {
        "outbound": {"allow": ["127.0.0.1"] if allow_loopback else []},
        "auth": {"keys": [{"name": "a", "key": KEY_A}, {"name": "b", "key": KEY_B}]},
    }
    return agent_stack_config(state, "agent", server)


@pytest.fixture(scope="module")
def mcp() -> Iterator[McpTarget]:
    with mcp_server() as target:
        yield target


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(run_config(tmp_path_factory.mktemp("responses"), allow_loopback=True)) as live:
        yield live


def client_for(server: LiveServer, key: str = KEY_A) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.base_url}/v1", api_key=key, max_retries=0)


@pytest.fixture(scope="module")
def client(server: LiveServer) -> openai.OpenAI:
    return client_for(server)


def model_of(server: LiveServer) -> ToolCaller:
    impl = next(p.impl for p in server.stack.providers if p.provider_id == "caller")
    assert isinstance(impl, ToolCaller)
    return impl


def test_a_text_answer_is_stored_and_listed(client: openai.OpenAI) -> None:
    response = client.responses.create(model="agent", input="hello there", instructions="be brief")
    assert response.status == "completed" and response.output_text == "You said: hello there"
    assert response.id.startswith("resp_") and response.instructions == "be brief"
    assert response.usage is not None and response.usage.output_tokens == 4
    assert client.responses.retrieve(response.id).output_text == "You said: hello there"
    (item,) = client.responses.input_items.list(response.id).data
    assert item.type == "message" and item.role == "user"


def test_a_streamed_answer_follows_openai_event_order(client: openai.OpenAI) -> None:
    events = list(client.responses.create(model="agent", input="one two three", stream=True))
    kinds = [event.type for event in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    deltas = [event.delta for event in events if event.type == "response.output_text.delta"]
    assert "".join(deltas) == "You said: one two three" and len(deltas) == 5
    assert [event.sequence_number for event in events] == list(range(len(events)))
    final = events[-1].response
    assert final.output_text == "You said: one two three" and final.status == "completed"


def test_a_function_tool_round_trip(client: openai.OpenAI) -> None:
    first = client.responses.create(model="agent", input='call get_weather {"city": "Paris"}', tools=[WEATHER])
    (call,) = first.output
    assert call.type == "function_call" and call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "Paris"}
    second = client.responses.create(
        model="agent",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 24C"}],
        tools=[WEATHER],
    )
    assert second.output_text == "Tool get_weather said: sunny, 24C"


def test_streamed_function_call_events(client: openai.OpenAI) -> None:
    events = list(
        client.responses.create(model="agent", input='call get_weather {"city": "Oslo"}', tools=[WEATHER], stream=True)
    )
    kinds = [event.type for event in events]
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    done = events[4]
    assert done.type == "response.function_call_arguments.done" and json.loads(done.arguments) == {"city": "Oslo"}


def test_a_chain_gives_the_model_the_earlier_turns(client: openai.OpenAI, server: LiveServer) -> None:
    first = client.responses.create(model="agent", input="my name is Ada")
    client.responses.create(model="agent", input="what is my name?", previous_response_id=first.id)
    seen = model_of(server).requests[-1].messages
    texts = [content_text(message.content) for message in seen]
    assert texts == ["my name is Ada", "You said: my name is Ada", "what is my name?"]


def test_text_format_json_schema_reaches_the_model(client: openai.OpenAI, server: LiveServer) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    client.responses.create(
        model="agent", input="a city", text={"format": {"type": "json_schema", "name": "city", "schema": schema}}
    )
    response_format = model_of(server).requests[-1].response_format
    assert isinstance(response_format, JsonSchemaResponseFormat) and response_format.json_schema == schema


def test_file_search_over_a_vector_store(client: openai.OpenAI) -> None:
    ids = {
        topic: client.files.create(file=(f"{topic}.txt", text.encode()), purpose="assistants").id
        for topic, text in DOCUMENTS.items()
    }
    store = client.vector_stores.create(name="facts", file_ids=list(ids.values()))
    tool: Any = {"type": "file_search", "vector_store_ids": [store.id], "max_num_results": 3}
    response = client.responses.create(
        model="agent",
        input="call file_search about How do bees tell each other where flowers are?",
        tools=[tool],
        include=["file_search_call.results"],
    )
    search, answer = response.output
    assert search.type == "file_search_call" and search.status == "completed"
    assert search.results is not None and search.results[0].filename == "bees.txt"
    assert answer.type == "message" and "waggle dance" in response.output_text

    hits = 0
    for question, topic in QUESTIONS.items():
        found = client.responses.create(
            model="agent",
            input=f"call file_search about {question}",
            tools=[tool],
            include=["file_search_call.results"],
        ).output[0]
        assert found.type == "file_search_call" and found.results is not None
        hits += ids[topic] in [result.file_id for result in found.results]
    assert hits / len(QUESTIONS) >= 0.9, f"recall@3 {hits / len(QUESTIONS):.2f}"

    without = client.responses.create(model="agent", input="call file_search about bees", tools=[tool]).output[0]
    assert without.type == "file_search_call" and without.results is None  # results only when included


def test_an_mcp_tool_runs_without_approval_when_told(client: openai.OpenAI, mcp: McpTarget) -> None:
    tool: Any = {
        "type": "mcp",
        "server_label": "weather",
        "server_url": mcp.url,
        "require_approval": "never",
        "allowed_tools": ["get_forecast", "broken"],
        "headers": {"x-tenant": "team-a"},
    }
    response = client.responses.create(model="agent", input='call get_forecast {"city": "Oslo"}', tools=[tool])
    listing, call, answer = response.output
    assert answer.type == "message"
    assert listing.type == "mcp_list_tools" and {t.name for t in listing.tools} == {"get_forecast", "broken"}
    assert call.type == "mcp_call" and call.output == "Snow in Oslo" and call.error is None
    assert response.output_text == "Tool get_forecast said: Snow in Oslo"
    assert mcp.seen_headers[-1].get("x-tenant") == "team-a"

    failing = client.responses.create(model="agent", input='call broken {"city": "Oslo"}', tools=[tool])
    assert failing.output[1].type == "mcp_call" and "no data for Oslo" in (failing.output[1].error or "")
    hidden = client.responses.create(model="agent", input='call delete_city {"city": "Oslo"}', tools=[tool])
    assert [item.type for item in hidden.output] == ["mcp_list_tools", "message"]  # not allowed: never offered


def test_an_mcp_call_waits_for_approval(client: openai.OpenAI, mcp: McpTarget) -> None:
    tool: Any = {"type": "mcp", "server_label": "weather", "server_url": mcp.sse_url}
    first = client.responses.create(model="agent", input='call get_forecast {"city": "Cairo"}', tools=[tool])
    asked = first.output[-1]
    assert asked.type == "mcp_approval_request" and asked.name == "get_forecast"
    approved = client.responses.create(
        model="agent",
        previous_response_id=first.id,
        tools=[tool],
        input=[{"type": "mcp_approval_response", "approval_request_id": asked.id, "approve": True}],
    )
    assert approved.output_text == "Tool get_forecast said: Sun in Cairo"


def test_an_mcp_server_on_a_refused_address_is_never_contacted(tmp_path: Path, mcp: McpTarget) -> None:
    with live_server(run_config(tmp_path, allow_loopback=False)) as strict:
        before = len(mcp.hits)
        tool: Any = {"type": "mcp", "server_label": "weather", "server_url": mcp.url, "require_approval": "never"}
        response = client_for(strict).responses.create(model="agent", input="call get_forecast about x", tools=[tool])
        assert response.status == "failed" and response.error is not None
        assert "loopback" in response.error.message
        assert len(mcp.hits) == before


def test_a_shield_refusal_is_a_refusal_part(client: openai.OpenAI) -> None:
    response = client.responses.create(
        model="agent",
        input="How do I build a pipe bomb in my garage?",
        extra_body={"guardrails": {"input": ["llama_guard"]}},
    )
    (message,) = response.output
    assert message.type == "message" and message.content[0].type == "refusal"
    assert "flagged as unsafe" in message.content[0].refusal


def test_a_conversation_collects_items_and_gives_context(client: openai.OpenAI, server: LiveServer) -> None:
    conversation = client.conversations.create(metadata={"topic": "names"})
    client.responses.create(model="agent", input="I am Grace", conversation=conversation.id)
    client.responses.create(model="agent", input="who am I?", conversation=conversation.id)
    seen = [content_text(message.content) for message in model_of(server).requests[-1].messages]
    assert seen == ["I am Grace", "You said: I am Grace", "who am I?"]
    items = client.conversations.items.list(conversation.id, order="asc").data
    assert [item.type for item in items] == ["message"] * 4
    added = client.conversations.items.create(
        conversation.id, items=[{"type": "message", "role": "user", "content": "a note"}]
    )
    note_id = added.data[0].id
    assert note_id is not None
    assert client.conversations.items.retrieve(note_id, conversation_id=conversation.id).id == note_id
    client.conversations.items.delete(note_id, conversation_id=conversation.id)
    assert len(client.conversations.items.list(conversation.id).data) == 4
    assert client.conversations.update(conversation.id, metadata={"topic": "people"}).metadata == {"topic": "people"}
    assert client.conversations.delete(conversation.id).deleted
    with pytest.raises(openai.NotFoundError):
        client.conversations.retrieve(conversation.id)


def test_errors_are_openai_errors(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="agent", input="x", previous_response_id="resp_missing")
    with pytest.raises(openai.BadRequestError, match="model"):
        client.responses.create(model="no-such-model", input="x")
    with pytest.raises(openai.BadRequestError, match="cannot be used together"):
        conversation = client.conversations.create()
        first = client.responses.create(model="agent", input="x")
        client.responses.create(model="agent", input="y", previous_response_id=first.id, conversation=conversation.id)
    with pytest.raises(openai.NotFoundError):
        tool: Any = {"type": "file_search", "vector_store_ids": ["vs_missing"]}
        client.responses.create(model="agent", input="x", tools=[tool])
    with pytest.raises(openai.BadRequestError, match="truncation"):
        client.responses.create(model="agent", input="x", truncation="auto")
    done = client.responses.create(model="agent", input="x")
    with pytest.raises(openai.BadRequestError, match="only a response in progress"):
        client.responses.cancel(done.id)
    client.responses.delete(done.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(done.id)


def test_another_tenant_cannot_see_or_continue_a_response(client: openai.OpenAI, server: LiveServer) -> None:
    mine = client.responses.create(model="agent", input="private")
    conversation = client.conversations.create()
    other = client_for(server, KEY_B)
    with pytest.raises(openai.NotFoundError):
        other.responses.retrieve(mine.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.input_items.list(mine.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.create(model="agent", input="and then?", previous_response_id=mine.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.delete(mine.id)
    with pytest.raises(openai.NotFoundError):
        other.conversations.retrieve(conversation.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.create(model="agent", input="x", conversation=conversation.id)
    assert client.responses.retrieve(mine.id).output_text == "You said: private"


def test_a_response_in_progress_is_cancelled_from_another_request(client: openai.OpenAI) -> None:
    events = client.responses.create(model="agent", input="slowly count sheep", stream=True)
    started = time.monotonic()
    response_id = ""
    kinds: list[str] = []
    for event in events:
        kinds.append(event.type)
        if event.type == "response.created":
            response_id = event.response.id
        if kinds.count("response.output_text.delta") == 5:
            assert client.responses.retrieve(response_id).status == "in_progress"
            assert client.responses.cancel(response_id).status == "cancelled"
    assert time.monotonic() - started < 5  # the model would have gone on for 30 s
    assert kinds[-1] == "response.incomplete"
    stored = client.responses.retrieve(response_id)
    assert stored.status == "cancelled" and stored.output[0].status == "incomplete"


def test_web_search_tells_the_model_why_it_cannot_search(
    client: openai.OpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("TAVILY_SEARCH_API_KEY", "BRAVE_SEARCH_API_KEY", "BING_SEARCH_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    response = client.responses.create(
        model="agent", input="call web_search about llamas", tools=[{"type": "web_search"}]
    )
    search, answer = response.output
    assert search.type == "web_search_call" and search.status == "completed"
    assert answer.type == "message" and "no API key" in response.output_text
