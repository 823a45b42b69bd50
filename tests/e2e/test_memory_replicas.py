"""Two `llama stack run` processes on one Postgres give the same keyword and hybrid answers after
each other's inserts, replacements and unregistrations: each keeps its BM25 indexes in memory, and
a write by the other process makes them rebuild. Vector banks are remote::pgvector, keyword banks
live in its Postgres kvstore; the embedder is the fake Ollama (no torch in the servers)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import yaml

from tests.e2e.test_scale_out import start, stop
from tests.fakes.ollama_model import embedder
from tests.fakes.ollama_server import FakeOllama, serve
from tests.servers import free_port

pytest.importorskip("ollama")
pytest.importorskip("pgvector")

EMBED = "all-minilm:l6-v2"
QUERIES = ("paper lanterns on the river", "zebra crossing", "festival", "river")


@pytest.fixture(scope="module")
def replicas(
    tmp_path_factory: pytest.TempPathFactory, postgres_dsn: str
) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    tag = "r" + uuid.uuid4().hex[:10]
    with serve(FakeOllama(installed=[embedder(EMBED, 384)])) as ollama_url:
        config: dict[str, Any] = {
            "version": 2,
            "image_name": "replicas",
            "providers": {
                "inference": [
                    {"provider_id": "ollama", "provider_type": "remote::ollama", "config": {"url": ollama_url}}
                ],
                "memory": [
                    {
                        "provider_id": "pgvector",
                        "provider_type": "remote::pgvector",
                        "config": {"dsn": postgres_dsn, "table_prefix": tag},
                    }
                ],
            },
            "metadata_store": {"type": "postgres", "dsn": postgres_dsn, "table_name": f"{tag}_registry"},
            "models": [
                {
                    "model_id": EMBED,
                    "model_type": "embedding",
                    "provider_id": "ollama",
                    "metadata": {"embedding_dimension": 384},
                }
            ],
        }
        path = tmp_path_factory.mktemp("replicas") / "run.yaml"
        path.write_text(yaml.safe_dump(config))
        ports = free_port(), free_port()
        processes = [start(path, ports[0]), start(path, ports[1])]
        try:
            with (
                httpx.Client(base_url=f"http://127.0.0.1:{ports[0]}", timeout=60) as one,
                httpx.Client(base_url=f"http://127.0.0.1:{ports[1]}", timeout=60) as two,
            ):
                yield one, two
        finally:
            for process in processes:
                stop(process)


def call(session: httpx.Client, path: str, body: dict[str, Any]) -> Any:
    response = session.post(path, json=body)
    assert response.status_code == 200, response.text
    return response.json()


def insert(session: httpx.Client, bank_id: str, **documents: str) -> None:
    docs = [{"document_id": name, "content": text, "metadata": {}} for name, text in documents.items()]
    call(session, "/alpha/memory/insert", {"bank_id": bank_id, "documents": docs})


def answers(session: httpx.Client, bank_id: str, mode: str | None) -> list[list[tuple[str, str, float]]]:
    """Each query's chunks (document, text, score rounded past float noise), in order."""
    results = []
    for query in QUERIES:
        params: dict[str, Any] = {"max_chunks": 5, **({"mode": mode} if mode else {})}
        body = call(session, "/alpha/memory/query", {"bank_id": bank_id, "query": query, "params": params})
        rows = zip(body["chunks"], body["scores"], strict=True)
        results.append([(chunk["document_id"], chunk["content"], round(score, 6)) for chunk, score in rows])
    return results


def documents_found(session: httpx.Client, bank_id: str, query: str, mode: str | None) -> set[str]:
    params: dict[str, Any] = {"max_chunks": 5, **({"mode": mode} if mode else {})}
    body = call(session, "/alpha/memory/query", {"bank_id": bank_id, "query": query, "params": params})
    return {chunk["document_id"] for chunk in body["chunks"]}


VECTOR = {"memory_bank_type": "vector", "embedding_model": EMBED, "chunk_size_in_tokens": 64}
CASES = [
    ("vector-bank", VECTOR, "keyword"),
    ("vector-bank", VECTOR, "hybrid"),
    ("keyword-bank", {"memory_bank_type": "keyword"}, None),
]


@pytest.mark.parametrize(("bank_id", "params", "mode"), CASES, ids=["vector+keyword", "vector+hybrid", "keyword"])
def test_each_replica_answers_as_the_other_after_its_writes(
    replicas: tuple[httpx.Client, httpx.Client], bank_id: str, params: dict[str, Any], mode: str | None
) -> None:
    one, two = replicas
    bank_id = f"{bank_id}-{mode}"
    call(one, "/alpha/memory-banks/register", {"memory_bank_id": bank_id, "params": params})
    insert(one, bank_id, seed="A quiet library with old maps.")
    # Both processes build their index now, before the writes they must notice.
    assert answers(one, bank_id, mode) == answers(two, bank_id, mode)

    insert(one, bank_id, lanterns="Paper lanterns float on the river at the festival.")
    assert "lanterns" in documents_found(two, bank_id, "paper lanterns", mode)
    assert answers(two, bank_id, mode) == answers(one, bank_id, mode)

    insert(two, bank_id, lanterns="A zebra crossing near the station.")  # replaces the document
    texts = {text for ranked in answers(one, bank_id, mode) for _, text, _ in ranked}
    assert "A zebra crossing near the station." in texts
    assert not any("Paper lanterns" in text for text in texts)
    assert answers(one, bank_id, mode) == answers(two, bank_id, mode)

    insert(two, bank_id, boats="Boats on the river during the festival.")
    insert(one, bank_id, more="Festival fireworks over the river.")
    assert answers(one, bank_id, mode) == answers(two, bank_id, mode)
    assert {"boats", "more"} <= documents_found(two, bank_id, "festival river", mode)


def test_a_bank_unregistered_and_registered_again_on_one_replica_is_empty_on_the_other(
    replicas: tuple[httpx.Client, httpx.Client],
) -> None:
    one, two = replicas
    call(one, "/alpha/memory-banks/register", {"memory_bank_id": "again", "params": {"memory_bank_type": "keyword"}})
    insert(one, "again", old="Paper lanterns float on the river.")
    assert documents_found(two, "again", "lanterns", None) == {"old"}
    call(one, "/alpha/memory-banks/unregister", {"memory_bank_id": "again"})
    call(one, "/alpha/memory-banks/register", {"memory_bank_id": "again", "params": {"memory_bank_type": "keyword"}})
    assert documents_found(two, "again", "lanterns", None) == set()
