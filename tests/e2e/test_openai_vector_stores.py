"""/v1/vector_stores driven by the official `openai` SDK over a real server with real MiniLM
embeddings, on FAISS and on pgvector (a real Postgres): files attached one by one and in
batches, search in every mode with filters and thresholds, recall@3 on the labelled set, a file
that cannot be parsed, deletion, and the same store seen as a v0.0.63 memory bank."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest
from llama_stack_client import LlamaStackClient

from tests.live import LiveServer, live_server
from tests.providers.memory.harness import MINILM, Servers, install_memory_providers, run_config
from tests.providers.memory.retrieval_set import DOCUMENTS, QUESTIONS

install_memory_providers()

SEASONS = {"photosynthesis": "summer", "glaciers": "winter", "penguins": "winter", "bees": "summer"}


@pytest.fixture(scope="module", params=("faiss", "pgvector"))
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    servers = Servers(
        postgres_dsn=lambda: str(request.getfixturevalue("postgres_dsn")),
        chroma_url=lambda: str(request.getfixturevalue("chroma_url")),
    )
    config = run_config(request.param, tmp_path_factory.mktemp(f"vector-stores-{request.param}"), servers)
    with live_server(config) as live:
        yield live


@pytest.fixture(scope="module")
def client(server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0)


@pytest.fixture(scope="module")
def topic_files(client: openai.OpenAI) -> dict[str, str]:
    """Topic -> file id, for every document of the labelled set."""
    return {
        topic: client.files.create(file=(f"{topic}.txt", text.encode()), purpose="assistants").id
        for topic, text in DOCUMENTS.items()
    }


@pytest.fixture(scope="module")
def store(client: openai.OpenAI, topic_files: dict[str, str]) -> Any:
    store = client.vector_stores.create(name="facts", metadata={"team": "docs"})
    batch = client.vector_stores.file_batches.create(vector_store_id=store.id, file_ids=list(topic_files.values()))
    assert batch.status == "completed" and batch.file_counts.completed == len(topic_files)
    for topic, season in SEASONS.items():
        client.vector_stores.files.update(
            file_id=topic_files[topic], vector_store_id=store.id, attributes={"season": season, "rank": len(topic)}
        )
    return store


def test_recall_at_3_on_the_labelled_set(client: openai.OpenAI, store: Any, topic_files: dict[str, str]) -> None:
    hits = 0
    for question, topic in QUESTIONS.items():
        page = client.vector_stores.search(vector_store_id=store.id, query=question, max_num_results=3)
        hits += topic_files[topic] in [result.file_id for result in page.data]
    recall = hits / len(QUESTIONS)
    assert recall >= 0.9, f"recall@3 {recall:.2f}"


def test_search_results_carry_file_name_attributes_and_text(client: openai.OpenAI, store: Any) -> None:
    page = client.vector_stores.search(vector_store_id=store.id, query="How do bees tell where flowers are?")
    top = page.data[0]
    assert top.filename == "bees.txt" and top.attributes == {"season": "summer", "rank": 4}
    assert "waggle dance" in top.content[0].text
    assert page.search_query == ["How do bees tell where flowers are?"]
    assert [r.score for r in page.data] == sorted((r.score for r in page.data), reverse=True)


def test_filters_comparison_and_compound(client: openai.OpenAI, store: Any) -> None:
    def names(filters: Any) -> set[str]:
        page = client.vector_stores.search(
            vector_store_id=store.id, query="nature", filters=filters, max_num_results=10
        )
        return {r.filename for r in page.data}

    assert names({"type": "eq", "key": "season", "value": "winter"}) == {"glaciers.txt", "penguins.txt"}
    assert names({"type": "ne", "key": "season", "value": "winter"}) == {"photosynthesis.txt", "bees.txt"}
    assert names({"type": "gt", "key": "rank", "value": 8}) == {"photosynthesis.txt"}
    either = {
        "type": "or",
        "filters": [
            {"type": "eq", "key": "season", "value": "summer"},
            {"type": "lte", "key": "rank", "value": 8},
        ],
    }
    assert names(either) == {"photosynthesis.txt", "bees.txt", "glaciers.txt", "penguins.txt"}
    both = {
        "type": "and",
        "filters": [{"type": "eq", "key": "season", "value": "summer"}, {"type": "lt", "key": "rank", "value": 10}],
    }
    assert names(both) == {"bees.txt"}


def test_keyword_and_hybrid_modes(client: openai.OpenAI, store: Any) -> None:
    for mode in ("keyword", "hybrid"):
        page = client.vector_stores.search(
            vector_store_id=store.id, query="waggle dance", extra_body={"search_mode": mode}, max_num_results=2
        )
        assert page.data[0].filename == "bees.txt", mode
    with pytest.raises(openai.BadRequestError, match="search_mode"):
        client.vector_stores.search(vector_store_id=store.id, query="x", extra_body={"search_mode": "psychic"})


def test_score_threshold_drops_weak_matches(client: openai.OpenAI, store: Any) -> None:
    everything = client.vector_stores.search(vector_store_id=store.id, query="bees", max_num_results=10)
    cut = (everything.data[0].score + everything.data[-1].score) / 2
    strong = client.vector_stores.search(
        vector_store_id=store.id, query="bees", max_num_results=10, ranking_options={"score_threshold": cut}
    )
    assert 0 < len(strong.data) < len(everything.data)
    assert all(r.score >= cut for r in strong.data)


def test_store_and_file_listing(client: openai.OpenAI, store: Any, topic_files: dict[str, str]) -> None:
    fetched = client.vector_stores.retrieve(store.id)
    assert fetched.name == "facts" and fetched.metadata == {"team": "docs"}
    assert fetched.file_counts.completed == len(topic_files) and fetched.status == "completed"
    assert fetched.usage_bytes == sum(len(text.encode()) for text in DOCUMENTS.values())
    listed = [f.id for f in client.vector_stores.files.list(vector_store_id=store.id, limit=5)]
    assert sorted(listed) == sorted(topic_files.values())  # auto-pagination over pages of five
    assert store.id in [s.id for s in client.vector_stores.list()]
    renamed = client.vector_stores.update(store.id, name="facts v2")
    assert renamed.name == "facts v2"


def test_an_unparsable_file_fails_with_last_error_not_500(client: openai.OpenAI) -> None:
    store = client.vector_stores.create(name="broken")
    pdf = client.files.create(file=("broken.pdf", b"%PDF-1.7 this is not really a pdf"), purpose="assistants")
    attached = client.vector_stores.files.create(vector_store_id=store.id, file_id=pdf.id)
    assert attached.status == "failed" and attached.last_error is not None
    assert attached.last_error.code == "invalid_file" and "PDF" in attached.last_error.message
    image = client.files.create(file=("photo.png", b"\x89PNG\r\n\x1a\n"), purpose="assistants")
    unsupported = client.vector_stores.files.create(vector_store_id=store.id, file_id=image.id)
    assert unsupported.status == "failed" and unsupported.last_error is not None
    assert unsupported.last_error.code == "unsupported_file"
    counts = client.vector_stores.retrieve(store.id).file_counts
    assert (counts.failed, counts.completed, counts.total) == (2, 0, 2)
    failed = client.vector_stores.files.list(vector_store_id=store.id, filter="failed")
    assert {f.id for f in failed} == {pdf.id, image.id}


def test_detaching_a_file_removes_it_from_search(client: openai.OpenAI) -> None:
    store = client.vector_stores.create(
        name="short-lived",
        chunking_strategy={"type": "static", "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 20}},
    )
    kept = client.files.create(file=("kept.txt", b"The lighthouse keeper climbs the tower."), purpose="assistants")
    gone = client.files.create(file=("gone.txt", b"The lighthouse lamp was removed."), purpose="assistants")
    for file in (kept, gone):
        client.vector_stores.files.create(vector_store_id=store.id, file_id=file.id)
    client.vector_stores.files.delete(file_id=gone.id, vector_store_id=store.id)
    for mode in ("vector", "keyword"):
        page = client.vector_stores.search(
            vector_store_id=store.id, query="lighthouse", extra_body={"search_mode": mode}
        )
        assert [r.file_id for r in page.data] == [kept.id], mode
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.files.retrieve(file_id=gone.id, vector_store_id=store.id)
    assert client.vector_stores.delete(store.id).deleted
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.retrieve(store.id)
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.search(vector_store_id=store.id, query="lighthouse")


def test_bad_requests_are_400_naming_the_field(client: openai.OpenAI, store: Any) -> None:
    with pytest.raises(openai.BadRequestError, match="chunk_overlap_tokens"):
        client.vector_stores.create(
            chunking_strategy={"type": "static", "static": {"max_chunk_size_tokens": 200, "chunk_overlap_tokens": 150}}
        )
    with pytest.raises(openai.BadRequestError, match="max_num_results"):
        client.vector_stores.search(vector_store_id=store.id, query="x", max_num_results=0)
    with pytest.raises(openai.BadRequestError, match="chunking_strategy"):
        other = client.files.create(file=("x.txt", b"text"), purpose="assistants")
        client.vector_stores.files.create(
            vector_store_id=store.id,
            file_id=other.id,
            chunking_strategy={"type": "static", "static": {"max_chunk_size_tokens": 300, "chunk_overlap_tokens": 0}},
        )
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.files.create(vector_store_id=store.id, file_id="file-missing")


def test_the_store_is_a_memory_bank_on_the_alpha_face(server: LiveServer, store: Any) -> None:
    alpha = LlamaStackClient(base_url=server.base_url, max_retries=0)
    bank = alpha.memory_banks.retrieve(memory_bank_id=store.id)
    assert bank is not None and bank.embedding_model == MINILM
    answer = alpha.memory.query(bank_id=store.id, query="Why do tides rise and fall?")
    assert "Moon" in str(answer.chunks[0].content)
