"""Agent definitions as the official llama-stack-client 0.0.63 sends them, against a live server:
what the server honours makes an agent; what it cannot honour answers 400 naming the field."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from llama_stack_client import BadRequestError, LlamaStackClient

from tests.live import LiveServer, live_server
from tests.providers.agents.fakes import EMBEDDER, MODEL, SHIELD, install, run_config, say, scripted_llm

install()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(run_config(tmp_path_factory.mktemp("agents-fields"))) as live:
        yield live


def agent_config(**extra: Any) -> Any:
    return {
        "model": MODEL,
        "instructions": "You are a helpful assistant.",
        "enable_session_persistence": True,
        "max_infer_iters": 3,
        **extra,
    }


def memory_tool(generator: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "memory",
        "memory_bank_configs": [{"bank_id": "facts", "type": "vector"}],
        "query_generator_config": generator,
        "max_chunks": 3,
        "max_tokens_in_context": 512,
        "input_shields": [SHIELD],
    }


@pytest.fixture(scope="module")
def client(server: LiveServer) -> LlamaStackClient:
    client = LlamaStackClient(base_url=server.base_url, max_retries=0)
    params: Any = {"memory_bank_type": "vector", "embedding_model": EMBEDDER, "chunk_size_in_tokens": 64}
    client.memory_banks.register(memory_bank_id="facts", params=params)
    documents: Any = [{"document_id": "geo", "content": "Paris is the capital of France.", "metadata": {}}]
    client.memory.insert(bank_id="facts", documents=documents)
    return client


def test_an_llm_query_generator_drives_retrieval_through_the_official_client(
    server: LiveServer, client: LlamaStackClient
) -> None:
    generator = {"type": "llm", "model": MODEL, "template": "Query for: {{ messages[-1].content }}"}
    agent_id = client.agents.create(agent_config=agent_config(tools=[memory_tool(generator)])).agent_id
    session_id = client.agents.session.create(agent_id=agent_id, session_name="s").session_id
    llm = scripted_llm(server.stack)
    llm.requests.clear()
    llm.will(say("capital France"))
    messages: Any = [{"role": "user", "content": "where is the government?"}]
    turn: Any = client.agents.turn.create(agent_id=agent_id, session_id=session_id, messages=messages, stream=False)

    assert [step.step_type for step in turn.steps] == ["shield_call", "memory_retrieval", "inference"]
    assert "Paris" in str(turn.steps[1].inserted_context)
    assert llm.requests[0].messages[0].content == "Query for: where is the government?"


@pytest.mark.parametrize(
    ("tools", "named"),
    [
        ([memory_tool({"type": "custom"})], "agent_config.tools[0].query_generator_config.type"),
        (
            [{"type": "code_interpreter", "remote_execution": {"url": {"uri": "http://10.0.0.1/"}, "method": "POST"}}],
            "agent_config.tools[0].remote_execution",
        ),
        ([{"type": "photogen"}], "agent_config.tools[0].type"),
    ],
)
def test_what_the_server_cannot_honour_answers_400_naming_the_field(
    client: LlamaStackClient, tools: list[dict[str, Any]], named: str
) -> None:
    with pytest.raises(BadRequestError) as refused:
        client.agents.create(agent_config=agent_config(tools=tools))
    assert refused.value.status_code == 400 and named in str(refused.value)


def test_unknown_fields_answer_400_naming_them(server: LiveServer, client: LlamaStackClient) -> None:
    agent_id = client.agents.create(agent_config=agent_config()).agent_id
    session_id = client.agents.session.create(agent_id=agent_id, session_name="s").session_id
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        created = http.post("/alpha/agents/create", json={"agent_config": agent_config(temprature=0.2)})
        turn = http.post(
            "/alpha/agents/turn/create",
            json={
                "agent_id": agent_id,
                "session_id": session_id,
                "messages": [{"role": "user", "content": "hi"}],
                "tool_config": {"tool_choice": "none"},
            },
        )
    assert created.status_code == 400 and "agent_config.temprature" in created.json()["error"]["message"]
    assert turn.status_code == 400 and "tool_config" in turn.json()["error"]["message"]
