"""Memory banks belong to the key that registered them: through a live server with four keys
(two tenants, one key limited to one embedding model, an admin), with the official
llama-stack-client 0.0.63 and raw HTTP for what the client would not send. Another tenant's bank
answers exactly as a bank that does not exist, on every memory and memory-bank route; model lists
and model lookups show only the models a key may use, on both faces. The embedder is the fake
Ollama (no torch in the test)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from llama_stack_client import LlamaStackClient

from tests.fakes.ollama_model import embedder
from tests.fakes.ollama_server import FakeOllama, serve
from tests.live import LiveServer, live_server

pytest.importorskip("ollama")

EMBED = "all-minilm:l6-v2"
EMBED_ALIAS = "minilm-for-carol"  # the same weights under a name only carol's key covers
KEYS = {
    "alice": "sk-alice-0123456789abcdef",
    "bob": "sk-bob-0123456789abcdef",
    "carol": "sk-carol-0123456789abcdef",
    "root": "sk-root-0123456789abcdef",
}
SECRET = "The vault code is 7431 and the vault opens at dawn."


def params(model: str = EMBED) -> dict[str, Any]:
    return {"memory_bank_type": "vector", "embedding_model": model, "chunk_size_in_tokens": 64}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    state: Path = tmp_path_factory.mktemp("tenants")
    embedding = {"model_type": "embedding", "provider_id": "ollama", "metadata": {"embedding_dimension": 384}}
    config: dict[str, Any] = {
        "version": 2,
        "image_name": "tenants",
        "providers": {
            "inference": [{"provider_id": "ollama", "provider_type": "remote::ollama", "config": {"url": ""}}],
            "memory": [
                {
                    "provider_id": "faiss",
                    "provider_type": "inline::faiss",
                    "config": {
                        "persist_dir": str(state / "faiss"),
                        "kvstore": {"type": "sqlite", "db_path": str(state / "kv.db")},
                    },
                }
            ],
        },
        "metadata_store": {"type": "sqlite", "db_path": str(state / "registry.db")},
        "models": [
            {"model_id": EMBED, **embedding},
            {"model_id": EMBED_ALIAS, "provider_model_id": EMBED, **embedding},
        ],
        "memory_banks": [{"memory_bank_id": "handbook", "params": params()}],
        "server": {
            "auth": {
                "keys": [
                    {"name": "alice", "key": KEYS["alice"]},
                    {"name": "bob", "key": KEYS["bob"]},
                    {"name": "carol", "key": KEYS["carol"], "scopes": {"models": [EMBED_ALIAS]}},
                    {"name": "root", "key": KEYS["root"], "admin": True},
                ]
            }
        },
    }
    with serve(FakeOllama(installed=[embedder(EMBED, 384)])) as ollama_url:
        config["providers"]["inference"][0]["config"]["url"] = ollama_url
        with live_server(config) as live:
            yield live


def client(server: LiveServer, name: str) -> LlamaStackClient:
    return LlamaStackClient(
        base_url=server.base_url, default_headers={"Authorization": f"Bearer {KEYS[name]}"}, max_retries=0
    )


def http(server: LiveServer, name: str) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {KEYS[name]}"}, timeout=30)


@pytest.fixture(scope="module")
def alice_bank(server: LiveServer) -> str:
    alice = client(server, "alice")
    alice.memory_banks.register(memory_bank_id="alice-notes", params=params())  # type: ignore[arg-type]
    alice.memory.insert(
        bank_id="alice-notes",
        documents=[{"document_id": "vault", "content": SECRET, "metadata": {}}],
    )
    return "alice-notes"


def answers(server: LiveServer, name: str, bank_id: str) -> dict[str, tuple[int, str]]:
    """Status and error message of every memory and memory-bank route that names `bank_id`."""
    document = {"document_id": "planted", "content": "planted by an intruder", "metadata": {}}
    query = {"bank_id": bank_id, "query": "vault code", "params": {"max_chunks": 5}}
    calls: dict[str, tuple[str, str, dict[str, Any]]] = {
        "get": ("GET", "/alpha/memory-banks/get", {"params": {"memory_bank_id": bank_id}}),
        "query": ("POST", "/alpha/memory/query", {"json": query}),
        "keyword query": ("POST", "/alpha/memory/query", {"json": {**query, "params": {"mode": "keyword"}}}),
        "insert": ("POST", "/alpha/memory/insert", {"json": {"bank_id": bank_id, "documents": [document]}}),
        "unregister": ("POST", "/alpha/memory-banks/unregister", {"json": {"memory_bank_id": bank_id}}),
    }
    seen: dict[str, tuple[int, str]] = {}
    with http(server, name) as session:
        for label, (method, path, kwargs) in calls.items():
            response = session.request(method, path, **kwargs)
            message = response.json()["error"]["message"] if response.status_code >= 400 else ""
            seen[label] = (response.status_code, message.replace(bank_id, "<bank>"))
    return seen


def test_another_tenants_bank_is_indistinguishable_from_a_missing_one(server: LiveServer, alice_bank: str) -> None:
    attacked = answers(server, "bob", alice_bank)
    missing = answers(server, "bob", "no-such-bank")
    assert attacked == missing
    assert {status for status, _ in attacked.values()} == {404}
    assert alice_bank not in [bank.identifier for bank in client(server, "bob").memory_banks.list()]


def test_the_owner_still_has_everything_after_the_attacks(server: LiveServer, alice_bank: str) -> None:
    answers(server, "bob", alice_bank)
    alice = client(server, "alice")
    assert alice_bank in [bank.identifier for bank in alice.memory_banks.list()]
    result = alice.memory.query(bank_id=alice_bank, query="vault code")
    assert [chunk.document_id for chunk in result.chunks] == ["vault"]  # nothing was planted


def test_a_tenant_cannot_take_over_or_redefine_another_tenants_bank_id(server: LiveServer, alice_bank: str) -> None:
    with http(server, "bob") as bob:
        taken = bob.post(
            "/alpha/memory-banks/register",
            json={"memory_bank_id": alice_bank, "params": params(), "provider_id": "faiss"},
        )
    assert taken.status_code == 409
    alice = client(server, "alice")
    assert [chunk.document_id for chunk in alice.memory.query(bank_id=alice_bank, query="vault").chunks] == ["vault"]


def test_an_admin_key_sees_and_queries_every_tenants_bank(server: LiveServer, alice_bank: str) -> None:
    root = client(server, "root")
    assert {alice_bank, "handbook"} <= {bank.identifier for bank in root.memory_banks.list()}
    assert root.memory_banks.retrieve(memory_bank_id=alice_bank).identifier == alice_bank
    assert [chunk.document_id for chunk in root.memory.query(bank_id=alice_bank, query="vault").chunks] == ["vault"]


def test_each_tenant_keeps_its_own_bank_and_the_shared_one(server: LiveServer, alice_bank: str) -> None:
    bob = client(server, "bob")
    bob.memory_banks.register(memory_bank_id="bob-notes", params=params())  # type: ignore[arg-type]
    bob.memory.insert(
        bank_id="bob-notes",
        documents=[{"document_id": "menu", "content": "Soup on Mondays.", "metadata": {}}],
    )
    assert {bank.identifier for bank in bob.memory_banks.list()} == {"bob-notes", "handbook"}
    alice_sees = {bank.identifier for bank in client(server, "alice").memory_banks.list()}
    assert "bob-notes" not in alice_sees and {alice_bank, "handbook"} <= alice_sees
    with http(server, "alice") as alice:
        assert alice.post("/alpha/memory/query", json={"bank_id": "bob-notes", "query": "soup"}).status_code == 404
    bob.memory_banks.unregister(memory_bank_id="bob-notes")
    assert "bob-notes" not in {bank.identifier for bank in bob.memory_banks.list()}


def test_a_shared_bank_is_used_by_every_tenant_but_removed_only_by_an_admin(server: LiveServer) -> None:
    for name in ("alice", "bob"):
        assert "handbook" in {bank.identifier for bank in client(server, name).memory_banks.list()}
        with http(server, name) as session:
            assert session.post("/alpha/memory/query", json={"bank_id": "handbook", "query": "x"}).status_code == 200
    with http(server, "bob") as bob:
        removed = bob.post("/alpha/memory-banks/unregister", json={"memory_bank_id": "handbook"})
        redefined = bob.post("/alpha/memory-banks/register", json={"memory_bank_id": "handbook", "params": params()})
    assert removed.status_code == 403 and "admin" in removed.json()["error"]["message"]
    assert redefined.status_code == 403
    assert "handbook" in {bank.identifier for bank in client(server, "alice").memory_banks.list()}


def test_model_lists_and_lookups_show_only_the_models_a_key_may_use(server: LiveServer) -> None:
    carol = client(server, "carol")
    assert [model.identifier for model in carol.models.list()] == [EMBED_ALIAS]
    assert {model.identifier for model in client(server, "alice").models.list()} == {EMBED, EMBED_ALIAS}
    with http(server, "carol") as session:
        listed = session.get("/v1/models").json()
        hidden = session.get(f"/v1/models/{EMBED}")
        hidden_alpha = session.get("/alpha/models/get", params={"identifier": EMBED})
        unknown_alpha = session.get("/alpha/models/get", params={"identifier": "no-such-model"})
    assert [entry["id"] for entry in listed["data"]] == [EMBED_ALIAS]
    assert hidden.status_code == 404 and hidden_alpha.status_code == 404
    # The 404 names the models the key may use, never the others.
    assert EMBED not in hidden_alpha.json()["error"]["message"].replace(f"'{EMBED}'", "")
    assert hidden_alpha.json()["error"]["message"].replace(EMBED, "?") == unknown_alpha.json()["error"][
        "message"
    ].replace("no-such-model", "?")


def test_memory_checks_the_banks_embedding_model_against_the_key(server: LiveServer) -> None:
    with http(server, "carol") as carol:
        shared = carol.post("/alpha/memory/query", json={"bank_id": "handbook", "query": "x"})
        inserted = carol.post(
            "/alpha/memory/insert",
            json={"bank_id": "handbook", "documents": [{"document_id": "d", "content": "x", "metadata": {}}]},
        )
        registered = carol.post("/alpha/memory-banks/register", json={"memory_bank_id": "c1", "params": params()})
        allowed = carol.post(
            "/alpha/memory-banks/register", json={"memory_bank_id": "carol-notes", "params": params(EMBED_ALIAS)}
        )
        own_query = carol.post("/alpha/memory/query", json={"bank_id": "carol-notes", "query": "x"})
    assert shared.status_code == 403 and EMBED in shared.json()["error"]["message"]
    assert inserted.status_code == 403
    assert registered.status_code == 403
    assert allowed.status_code == 200 and own_query.status_code == 200


def test_a_vector_stores_bank_belongs_to_the_key_that_made_the_store(server: LiveServer) -> None:
    with http(server, "alice") as alice:
        made = alice.post("/v1/vector_stores", json={"name": "alice-store", "embedding_model": EMBED})
        assert made.status_code == 200, made.text
        store_id = made.json()["id"]
        assert alice.post("/alpha/memory/query", json={"bank_id": store_id, "query": "x"}).status_code == 200
    # The store is a memory bank under the same id: the Llama Stack face hides it from bob too.
    assert answers(server, "bob", store_id) == answers(server, "bob", "no-such-bank")
    assert store_id not in [bank.identifier for bank in client(server, "bob").memory_banks.list()]
