"""Approximate vector indexes per bank: an HNSW or IVF bank finds what exact search finds, survives
a restart and a crash mid-write, forgets deleted documents; the official client chooses a bank's
index at registration (or leaves it to the provider), and an unknown or unsupported index is a 400.
pgvector's HNSW bank answers through its graph (and its exact bank by a scan), and returns k hits
whatever its ef_search.

The FAISS and pgvector stores are driven through their VectorStore seam with clustered synthetic vectors (what an
embedding model's output looks like to an index), so these tests need no model; the client tests
run the whole stack in-process with all-MiniLM-L6-v2."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from llama_stack_client import AsyncLlamaStackClient, BadRequestError, NotFoundError, UnprocessableEntityError

from llama_stack.apis.errors import InvalidRequest
from llama_stack.distribution.resolver import build_stack
from llama_stack.distribution.spec import parse_run_config
from llama_stack.providers.memory.common.config import VectorIndexConfig
from llama_stack.providers.memory.common.types import StoredChunk, Vectors, VectorStore, normalise
from llama_stack.providers.memory.faiss.store import FaissVectorStore
from llama_stack.providers.memory.pgvector.store import PgVectorStore
from llama_stack.providers.memory.sqlite_vec.store import SqliteVecStore
from llama_stack.server.app import create_app
from tests.providers.memory.harness import MINILM, Servers, run_config

DIMENSION = 32
BANK = "bank"


def clustered(rows: int, seed: int = 0) -> Vectors:
    """Unit vectors around 40 centres; another seed draws other points around the same centres."""
    centres = np.random.default_rng(0).normal(size=(40, DIMENSION))
    rng = np.random.default_rng(seed)
    points = centres[rng.integers(0, 40, rows)] + 0.4 * rng.normal(size=(rows, DIMENSION))
    return normalise(points.astype(np.float32))


def chunks(document_id: str, rows: int, **metadata: Any) -> list[StoredChunk]:
    return [StoredChunk(document_id, i, f"{document_id}/{i}", 1, dict(metadata)) for i in range(rows)]


async def open_store(folder: Path, kind: str, **settings: Any) -> FaissVectorStore:
    store = FaissVectorStore(folder, VectorIndexConfig.model_validate({"kind": kind, **settings}))
    await store.open_bank(BANK, DIMENSION)
    return store


async def fill(store: VectorStore, vectors: Vectors, per_document: int = 100, first: int = 0) -> None:
    for start in range(0, len(vectors), per_document):
        part = vectors[start : start + per_document]
        name = f"doc-{first + start // per_document}"
        await store.replace_documents(BANK, [name], chunks(name, len(part), half=(start // per_document) % 2), part)


async def top(store: VectorStore, queries: Vectors, k: int = 10, **filters: Any) -> list[list[str]]:
    found = []
    for query in queries:
        hits = await store.search(BANK, query[None, :], k, filters)
        found.append([hit.chunk.content for hit in hits])
    return found


def recall(found: list[list[str]], exact: list[list[str]]) -> float:
    return sum(len(set(f) & set(e)) for f, e in zip(found, exact, strict=True)) / sum(len(e) for e in exact)


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
async def test_an_approximate_bank_finds_what_exact_search_finds(tmp_path: Path, kind: str) -> None:
    vectors, queries = clustered(4000), clustered(50, seed=1)
    exact, approximate = await open_store(tmp_path / "exact", "exact"), await open_store(tmp_path / kind, kind)
    await fill(exact, vectors)
    await fill(approximate, vectors)
    assert recall(await top(approximate, queries), await top(exact, queries)) >= 0.95
    # A filter is honoured exactly: every hit matches it.
    filtered = await top(approximate, queries[:5], half=1)
    assert filtered == await top(exact, queries[:5], half=1)
    await exact.close()
    await approximate.close()


async def test_an_auto_bank_answers_exactly_while_small(tmp_path: Path) -> None:
    vectors, queries = clustered(1500), clustered(20, seed=1)
    exact, auto = await open_store(tmp_path / "exact", "exact"), await open_store(tmp_path / "auto", "auto")
    await fill(exact, vectors)
    await fill(auto, vectors)
    assert await top(auto, queries) == await top(exact, queries)
    past = await open_store(tmp_path / "past", "auto", auto_threshold=1000)
    await fill(past, vectors)
    assert recall(await top(past, queries), await top(exact, queries)) >= 0.95
    for store in (exact, auto, past):
        await store.close()


async def test_an_approximate_bank_survives_a_restart_and_a_crash_mid_write(tmp_path: Path) -> None:
    vectors, queries = clustered(3000), clustered(20, seed=1)
    store = await open_store(tmp_path, "hnsw")
    await fill(store, vectors[:2500])
    await store.close()  # a clean shutdown snapshots the index
    store = await open_store(tmp_path, "hnsw")
    await fill(store, vectors[2500:], first=25)  # logged after the snapshot
    before = await top(store, queries)
    # kill -9 mid-way through the next insert: a torn record at the log's end, a half-written snapshot
    (log,) = (tmp_path / "banks").glob("*/log")
    with log.open("ab") as file:
        file.write(b"LSMR\x00\x10\x00\x00\x00\x00\x00\x00torn")
    (log.parent / "index.snapshot.tmp").write_bytes(b"half a snapshot")
    store = await open_store(tmp_path, "hnsw")
    assert await top(store, queries) == before
    assert len(await store.all_chunks(BANK)) == 3000
    await store.replace_documents(BANK, ["after"], chunks("after", 1), vectors[:1])  # the log takes writes again
    assert (await top(store, vectors[:1], k=2))[0][:2] in (["after/0", "doc-0/0"], ["doc-0/0", "after/0"])
    await store.close()


async def test_an_unreadable_snapshot_is_rebuilt_from_the_log(tmp_path: Path) -> None:
    vectors, queries = clustered(1200), clustered(10, seed=1)
    store = await open_store(tmp_path, "hnsw")
    await fill(store, vectors)
    before = await top(store, queries)
    await store.close()
    (snapshot,) = (tmp_path / "banks").glob("*/index.snapshot")
    snapshot.write_bytes(snapshot.read_bytes()[:1000])
    store = await open_store(tmp_path, "hnsw")
    assert recall(await top(store, queries), before) >= 0.95
    await store.close()


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
async def test_deleted_documents_stay_deleted_in_an_approximate_bank(tmp_path: Path, kind: str) -> None:
    vectors = clustered(3000)
    store = await open_store(tmp_path, kind)
    await fill(store, vectors)
    await store.replace_documents(BANK, ["doc-0"], [], vectors[:0])
    hits = await top(store, vectors[:5], k=5)
    assert all(not content.startswith("doc-0/") for found in hits for content in found)
    await store.close()
    store = await open_store(tmp_path, kind)  # the snapshot still holds doc-0; the log deletes it
    assert await top(store, vectors[:5], k=5) == hits
    # Deleting most of the bank rebuilds the index from what is left; queries stay right.
    doomed = [f"doc-{i}" for i in range(1, 28)]
    await store.replace_documents(BANK, doomed, [], vectors[:0])
    found = await top(store, vectors[2900:2905], k=3)
    assert [row[0] for row in found] == [f"doc-29/{i}" for i in range(5)]  # each finds itself first
    assert {c.document_id for c in await store.all_chunks(BANK)} == {"doc-28", "doc-29"}
    await store.close()


async def test_new_search_settings_apply_to_an_open_bank_without_a_rebuild(tmp_path: Path) -> None:
    vectors, queries = clustered(4000), clustered(20, seed=1)
    exact = await open_store(tmp_path / "exact", "exact")
    await fill(exact, vectors)
    store = await open_store(tmp_path / "ivf", "ivf", ivf_probe=1)
    await fill(store, vectors)
    assert await top(store, queries) != await top(exact, queries)  # one cluster of ~100 misses neighbours
    # Registered again probing every cluster: the same index now answers exactly.
    store.choose_index(BANK, VectorIndexConfig(kind="ivf", ivf_probe=10_000))
    await store.open_bank(BANK, DIMENSION)
    assert await top(store, queries) == await top(exact, queries)
    await exact.close()
    await store.close()


async def open_pgvector(dsn: str, kind: str, **settings: Any) -> PgVectorStore:
    default = VectorIndexConfig.model_validate({"kind": kind})
    store = await PgVectorStore.open(dsn, f"idx_{uuid.uuid4().hex[:12]}", True, 2, index=default)
    store.choose_index(BANK, VectorIndexConfig.model_validate({"kind": kind, **settings}))
    await store.open_bank(BANK, DIMENSION)
    return store


async def test_a_pgvector_hnsw_bank_answers_through_its_graph(postgres_dsn: str) -> None:
    vectors, queries = clustered(2000), clustered(30, seed=1)
    exact, graph = await open_pgvector(postgres_dsn, "exact"), await open_pgvector(postgres_dsn, "hnsw")
    try:
        await fill(exact, vectors)
        await fill(graph, vectors)
        assert recall(await top(graph, queries), await top(exact, queries)) >= 0.95
        assert await top(graph, queries[:5], half=1) == await top(exact, queries[:5], half=1)  # filters: exact
        # The statement the bank runs walks the HNSW index; the exact bank's scans the table.
        assert "Index Scan using" in await graph.explain(BANK, queries[:1], 10, {})
        assert "Seq Scan" in await exact.explain(BANK, queries[:1], 10, {})
        assert "Index Scan using" not in await graph.explain(BANK, queries[:1], 10, {"half": 1})
    finally:
        for store in (exact, graph):
            await store.drop_bank(BANK)
            await store.close()


@pytest.mark.parametrize("settings", [{}, {"hnsw_ef_search": 16}])
async def test_a_pgvector_hnsw_query_returns_k_hits_past_its_ef_search(
    postgres_dsn: str, settings: dict[str, Any]
) -> None:
    # pgvector stops at ef_search candidates, so a k above it would come back short if not raised to k.
    store = await open_pgvector(postgres_dsn, "hnsw", **settings)
    try:
        await fill(store, clustered(1000))
        for k in (10, 60, 250):
            assert len((await top(store, clustered(1, seed=2), k=k))[0]) == k
    finally:
        await store.drop_bank(BANK)
        await store.close()


def test_a_backend_without_an_index_kind_refuses_it(tmp_path: Path) -> None:
    store = SqliteVecStore(str(tmp_path / "vectors.db"))
    store.choose_index(BANK, VectorIndexConfig(kind="auto"))
    with pytest.raises(InvalidRequest, match="index 'hnsw' is not available on sqlite-vec"):
        store.choose_index(BANK, VectorIndexConfig(kind="hnsw"))


def _no_server() -> str:
    raise AssertionError("this provider needs no server")


@pytest.fixture(params=["faiss"])
async def client(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncLlamaStackClient]:
    """The official client against a whole stack in-process, with the memory provider `param`."""
    config = run_config(request.param, tmp_path, Servers(postgres_dsn=_no_server, chroma_url=_no_server))
    stack = await build_stack(parse_run_config(config, env={}))
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(stack)), base_url="http://stack")
    yield AsyncLlamaStackClient(base_url="http://stack", http_client=http, max_retries=0)
    await http.aclose()
    await stack.shutdown()


def vector_params(**extra: Any) -> Any:
    return {"memory_bank_type": "vector", "embedding_model": MINILM, "chunk_size_in_tokens": 64, **extra}


async def test_the_official_client_chooses_a_banks_index(client: AsyncLlamaStackClient) -> None:
    await client.memory_banks.register(memory_bank_id="plain", params=vector_params())
    await client.memory_banks.register(memory_bank_id="graph", params=vector_params(index="hnsw"))
    plain = await client.memory_banks.retrieve(memory_bank_id="plain")
    graph = await client.memory_banks.retrieve(memory_bank_id="graph")
    assert plain is not None and graph is not None
    assert getattr(plain, "index", None) is None and getattr(graph, "index", None) == "hnsw"
    documents: Any = [
        {"document_id": "tea", "content": "Green tea is steeped at eighty degrees.", "metadata": {}},
        {"document_id": "bikes", "content": "A bicycle chain needs oil every few hundred kilometres.", "metadata": {}},
    ]
    for bank in ("plain", "graph"):
        await client.memory.insert(bank_id=bank, documents=documents)
        answer = await client.memory.query(bank_id=bank, query="how hot should the water be for tea?")
        assert answer.chunks[0].document_id == "tea"


async def test_an_unknown_index_is_refused_naming_the_choices(client: AsyncLlamaStackClient) -> None:
    # A value outside the schema is a validation error, 422 like every other invalid field of a body.
    with pytest.raises(UnprocessableEntityError) as refused:
        await client.memory_banks.register(memory_bank_id="odd", params=vector_params(index="annoy"))
    assert "'auto', 'exact', 'hnsw' or 'ivf'" in str(refused.value)
    with pytest.raises(NotFoundError):
        await client.memory_banks.retrieve(memory_bank_id="odd")


@pytest.mark.parametrize("client", ["sqlite-vec"], indirect=True)
async def test_an_index_the_backend_lacks_is_a_400(client: AsyncLlamaStackClient) -> None:
    with pytest.raises(BadRequestError) as refused:
        await client.memory_banks.register(memory_bank_id="graph", params=vector_params(index="hnsw"))
    assert "index 'hnsw' is not available on sqlite-vec; choose one of: auto, exact" in str(refused.value)
    with pytest.raises(NotFoundError):
        await client.memory_banks.retrieve(memory_bank_id="graph")
    await client.memory_banks.register(memory_bank_id="scan", params=vector_params(index="exact"))
