"""RAG through the official llama-stack-client 0.0.63 against a live server, with real MiniLM
embeddings: register a vector bank, insert documents, query them; on inline::faiss and on
remote::pgvector (a real Postgres with pgvector)."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from typing import Any

import pytest
from llama_stack_client import APIStatusError, BadRequestError, LlamaStackClient, NotFoundError

from tests.live import LiveServer, live_server
from tests.providers.memory.harness import MINILM, Servers, install_memory_providers, run_config
from tests.providers.memory.retrieval_set import DOCUMENTS

install_memory_providers()

BACKENDS = ("faiss", "pgvector")


@pytest.fixture(scope="module", params=BACKENDS)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    servers = Servers(
        postgres_dsn=lambda: str(request.getfixturevalue("postgres_dsn")),
        chroma_url=lambda: str(request.getfixturevalue("chroma_url")),
    )
    config = run_config(request.param, tmp_path_factory.mktemp(f"live-memory-{request.param}"), servers)
    with live_server(config) as live:
        yield live


@pytest.fixture(scope="module")
def client(server: LiveServer) -> LlamaStackClient:
    return LlamaStackClient(base_url=server.base_url, max_retries=0)


def vector_params(**overrides: Any) -> Any:
    return {
        "memory_bank_type": "vector",
        "embedding_model": MINILM,
        "chunk_size_in_tokens": 128,
        "overlap_size_in_tokens": 16,
        **overrides,
    }


def test_register_insert_and_query_a_vector_bank(client: LlamaStackClient) -> None:
    client.memory_banks.register(memory_bank_id="facts", params=vector_params())
    bank = client.memory_banks.retrieve(memory_bank_id="facts")
    assert bank.identifier == "facts" and bank.embedding_dimension == 384
    assert "facts" in [b.identifier for b in client.memory_banks.list()]

    documents: list[Any] = [
        {"document_id": name, "content": text, "metadata": {"topic": name}, "mime_type": "text/plain"}
        for name, text in DOCUMENTS.items()
    ]
    html = "<h1>Lanterns</h1><p>Paper lanterns float on the river at the festival.</p><script>x()</script>"
    documents.append(
        {
            "document_id": "lanterns",
            "content": {"uri": "data:text/html;base64," + base64.b64encode(html.encode()).decode()},
            "metadata": {"topic": "festival"},
        }
    )
    client.memory.insert(bank_id="facts", documents=documents)

    response = client.memory.query(bank_id="facts", query="What do bees do to share where flowers are?")
    assert response.chunks[0].document_id == "bees"
    assert len(response.chunks) == len(response.scores) == 3
    assert response.scores == sorted(response.scores, reverse=True)

    filtered = client.memory.query(
        bank_id="facts", query="floating lights", params={"max_chunks": 5, "filters": {"topic": "festival"}}
    )
    assert [(c.document_id, c.content) for c in filtered.chunks] == [
        ("lanterns", "Lanterns\n\nPaper lanterns float on the river at the festival.")
    ]
    hybrid = client.memory.query(bank_id="facts", query="Fresnel lens", params={"mode": "hybrid", "max_chunks": 1})
    assert hybrid.chunks[0].document_id == "lighthouses"


def test_errors_reach_the_client_with_their_status(client: LlamaStackClient) -> None:
    client.memory_banks.register(memory_bank_id="strict", params=vector_params())
    with pytest.raises(NotFoundError, match="'nowhere' is not registered"):
        client.memory.query(bank_id="nowhere", query="anything")
    with pytest.raises(BadRequestError, match="document 'blank' is empty"):
        client.memory.insert(bank_id="strict", documents=[{"document_id": "blank", "content": "", "metadata": {}}])
    with pytest.raises(APIStatusError) as too_large:
        client.memory.insert(
            bank_id="strict", documents=[{"document_id": "huge", "content": "x" * 30_000, "metadata": {}}]
        )
    assert too_large.value.status_code == 413
    with pytest.raises(BadRequestError, match=re.escape("http://127.0.0.1:9/x.txt")):
        client.memory.insert(
            bank_id="strict", documents=[{"document_id": "gone", "content": "http://127.0.0.1:9/x.txt", "metadata": {}}]
        )
    assert client.memory.query(bank_id="strict", query="anything").chunks == []


def test_unregistering_a_bank_removes_it(client: LlamaStackClient) -> None:
    client.memory_banks.register(memory_bank_id="temporary", params=vector_params())
    client.memory.insert(
        bank_id="temporary", documents=[{"document_id": "d", "content": "short-lived", "metadata": {}}]
    )
    client.memory_banks.unregister(memory_bank_id="temporary")
    assert "temporary" not in [b.identifier for b in client.memory_banks.list()]
    with pytest.raises(NotFoundError):
        client.memory.query(bank_id="temporary", query="short-lived")
