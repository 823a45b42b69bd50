"""An agent retrieves from memory on behalf of the key that runs its turn: a tenant who names
another tenant's bank in its agent's memory tool is told the bank does not exist. A live server with two
keys, the official llama-stack-client 0.0.63 Agent helper, and the scripted agent providers (whose
model repeats the context it was given, so a leak would show in the answer)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from llama_stack_client import LlamaStackClient, NotFoundError
from llama_stack_client.lib.agents.agent import Agent

from tests.live import LiveServer, live_server
from tests.providers.agents.fakes import EMBEDDER, MODEL, install, run_config

install()

KEYS = {"alice": "sk-alice-0123456789abcdef", "bob": "sk-bob-0123456789abcdef"}
SECRET = "The vault code is 7431."


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    config = run_config(tmp_path_factory.mktemp("tenant-agents"), safety=False)
    config["server"] = {"auth": {"keys": [{"name": name, "key": key} for name, key in KEYS.items()]}}
    with live_server(config) as live:
        yield live


def client(server: LiveServer, name: str) -> LlamaStackClient:
    return LlamaStackClient(base_url=server.base_url, default_headers={"Authorization": f"Bearer {KEYS[name]}"})


def rag_agent(sdk: LlamaStackClient, bank_id: str) -> Any:
    memory_tool = {
        "type": "memory",
        "memory_bank_configs": [{"bank_id": bank_id, "type": "vector"}],
        "query_generator_config": {"type": "default", "sep": " "},
        "max_tokens_in_context": 512,
        "max_chunks": 5,
    }
    config = {
        "model": MODEL,
        "instructions": "You are a helpful assistant.",
        "enable_session_persistence": True,
        "max_infer_iters": 3,
        "sampling_params": {"strategy": "greedy", "temperature": 0.0, "max_tokens": 256},
        "tools": [memory_tool],
    }
    return Agent(sdk, config)  # type: ignore[arg-type]


def ask(agent: Any, question: str) -> str:
    """Everything the turn streamed, as text: a leak anywhere in it would show."""
    session_id = agent.create_session("s")
    items = list(agent.create_turn(messages=[{"role": "user", "content": question}], session_id=session_id))
    return "\n".join(item.model_dump_json() if hasattr(item, "model_dump_json") else repr(item) for item in items)


def test_an_agent_cannot_retrieve_from_another_tenants_bank(server: LiveServer) -> None:
    alice = client(server, "alice")
    params: Any = {"memory_bank_type": "vector", "embedding_model": EMBEDDER, "chunk_size_in_tokens": 64}
    alice.memory_banks.register(memory_bank_id="alice-vault", params=params)
    alice.memory.insert(bank_id="alice-vault", documents=[{"document_id": "v", "content": SECRET}])  # type: ignore[typeddict-item]

    assert "7431" in ask(rag_agent(alice, "alice-vault"), "what is the vault code?")  # the owner's agent reads it
    bob = client(server, "bob")
    # The agent is refused as one naming a bank that does not exist: nothing tells bob it does.
    with pytest.raises(NotFoundError) as taken:
        rag_agent(bob, "alice-vault")
    with pytest.raises(NotFoundError) as missing:
        rag_agent(bob, "no-such-vault")
    assert str(taken.value.body).replace("alice-vault", "?") == str(missing.value.body).replace("no-such-vault", "?")
