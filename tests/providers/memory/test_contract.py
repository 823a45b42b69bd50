"""The memory contract: every provider, real MiniLM embeddings, the same cases and the same answers."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from llama_stack.apis.errors import InvalidRequest, MemoryBankNotFound, PayloadTooLarge
from llama_stack.apis.memory import InsertDocumentsRequest, QueryDocumentsRequest
from llama_stack.apis.memory_banks import VectorMemoryBank
from llama_stack.models.chat_format import get_tokenizer
from tests.providers.memory.harness import MAX_DOCUMENT_BYTES, MINILM, MemoryHarness, Servers, doc
from tests.providers.memory.retrieval_set import DOCUMENTS, QUESTIONS

RECALL_AT_3_BAR = 0.9

ANIMALS = [
    doc("cat", "Cats are small domesticated felines that purr when content.", kind="animal", legs=4, pet=True),
    doc("spider", "Spiders spin silk webs to trap flying insects.", kind="animal", legs=8, pet=False),
    doc("rust", "Rust is a systems programming language that guarantees memory safety.", kind="tech", legs=0),
    doc("parrot", "Parrots are colourful birds that can imitate human speech.", kind="animal", legs=2, pet=1),
]


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


@pytest.fixture(scope="module")
async def animals(harness: MemoryHarness) -> str:
    bank = await harness.vector_bank()
    await harness.insert(bank, *ANIMALS)
    return bank


async def test_the_relevant_document_comes_first_scored_by_cosine_similarity(
    harness: MemoryHarness, animals: str
) -> None:
    response = await harness.query(animals, "Which pet purrs?", max_chunks=4, mode="vector")
    assert response.chunks[0].document_id == "cat"
    assert len(response.chunks) == len(response.scores) == 4
    assert response.scores == sorted(response.scores, reverse=True)
    query_vector, *chunk_vectors = await harness.embed(["Which pet purrs?", *(str(c.content) for c in response.chunks)])
    for score, vector in zip(response.scores, chunk_vectors, strict=True):
        assert score == pytest.approx(cosine(query_vector, vector), abs=2e-3)


async def test_max_chunks_and_its_alias_top_k_limit_the_answer(harness: MemoryHarness, animals: str) -> None:
    assert len((await harness.query(animals, "animals")).chunks) == 3  # the default, as Llama Stack
    assert len((await harness.query(animals, "animals", max_chunks=2)).chunks) == 2
    assert len((await harness.query(animals, "animals", top_k=1)).chunks) == 1
    assert len((await harness.query(animals, "animals", max_chunks=50)).chunks) == 4


async def test_metadata_filters_match_json_values(harness: MemoryHarness, animals: str) -> None:
    query = "an animal"
    assert set(await harness.document_ids(animals, query, max_chunks=10, filters={"kind": "tech"})) == {"rust"}
    assert set(await harness.document_ids(animals, query, max_chunks=10, filters={"legs": 8})) == {"spider"}
    assert set(await harness.document_ids(animals, query, max_chunks=10, filters={"legs": 8.0})) == {"spider"}
    # true is not 1: the parrot's pet flag is the number 1
    assert set(await harness.document_ids(animals, query, max_chunks=10, filters={"pet": True})) == {"cat"}
    assert set(await harness.document_ids(animals, query, max_chunks=10, filters={"pet": 1})) == {"parrot"}
    both = {"kind": "animal", "pet": False}
    assert set(await harness.document_ids(animals, query, max_chunks=10, filters=both)) == {"spider"}
    assert await harness.document_ids(animals, query, filters={"colour": "red"}) == []
    with pytest.raises(InvalidRequest, match="filters"):
        await harness.query(animals, query, filters={"kind": ["animal"]})


async def test_score_threshold_drops_weak_matches(harness: MemoryHarness, animals: str) -> None:
    everything = await harness.query(animals, "Which pet purrs?", max_chunks=10)
    cut = (everything.scores[0] + everything.scores[1]) / 2
    strong = await harness.query(animals, "Which pet purrs?", max_chunks=10, score_threshold=cut)
    assert [c.document_id for c in strong.chunks] == ["cat"]
    assert all(score >= cut for score in strong.scores)


async def test_keyword_and_hybrid_modes_find_an_exact_rare_term(harness: MemoryHarness) -> None:
    bank = await harness.vector_bank()
    await harness.insert(
        bank,
        doc("manual", "Error code QX-7731 means the pump's intake filter is clogged; clean it."),
        doc("pump", "Water pumps move fluid by mechanical action, and filters keep debris out."),
        doc("cars", "Electric cars are charged from the grid and have fewer moving parts."),
    )
    keyword = await harness.query(bank, "QX-7731", mode="keyword", max_chunks=5)
    assert [c.document_id for c in keyword.chunks] == ["manual"]  # only it shares a term with the query
    assert keyword.scores[0] > 0
    hybrid = await harness.query(bank, "what does QX-7731 on my pump mean", mode="hybrid", max_chunks=2)
    assert hybrid.chunks[0].document_id == "manual"
    # Weighted fusion: 0.6 * cosine + 0.4 * the share of the query's BM25 weight the chunk matched.
    vector = await harness.query(bank, "what does QX-7731 on my pump mean", mode="vector", max_chunks=3)
    cosine_of_manual = dict(zip([c.document_id for c in vector.chunks], vector.scores, strict=True))["manual"]
    assert 0.6 * cosine_of_manual < hybrid.scores[0] <= 0.6 * cosine_of_manual + 0.4 + 1e-9
    assert await harness.document_ids(bank, "charging", mode="keyword", filters={"missing": 1}) == []


async def test_a_long_document_is_cut_into_overlapping_token_windows(harness: MemoryHarness) -> None:
    bank = await harness.vector_bank(chunk_size=32, overlap=8)
    text = " ".join(f"Sentence number {i} talks about topic {i * 7}." for i in range(30))
    tokens = len(get_tokenizer().encode(text, bos=False, eos=False))
    await harness.insert(bank, doc("long", text))
    response = await harness.query(bank, "topic", max_chunks=1000)
    expected = 1 + math.ceil((tokens - 32) / (32 - 8))
    assert len(response.chunks) == expected
    assert all(chunk.token_count <= 32 for chunk in response.chunks)
    assert sum(chunk.token_count for chunk in response.chunks) == tokens + 8 * (expected - 1)
    contents = "".join(str(chunk.content) for chunk in response.chunks)
    assert all(f"Sentence number {i} " in contents for i in range(30))


async def test_reinserting_a_document_replaces_its_chunks(harness: MemoryHarness) -> None:
    bank = await harness.vector_bank(chunk_size=16, overlap=0)
    await harness.insert(bank, doc("note", "The meeting is on Monday in room four. " * 4), doc("other", "Lunch menu."))
    await harness.insert(bank, doc("note", "The meeting moved to Friday."))
    response = await harness.query(bank, "When is the meeting?", max_chunks=100)
    texts = [str(c.content) for c in response.chunks if c.document_id == "note"]
    assert texts == ["The meeting moved to Friday."]
    assert sorted(c.document_id for c in response.chunks) == ["note", "other"]


async def test_unknown_bank_is_not_found(harness: MemoryHarness) -> None:
    with pytest.raises(MemoryBankNotFound, match="'no-such-bank'"):
        await harness.query("no-such-bank", "anything")
    with pytest.raises(MemoryBankNotFound):
        await harness.insert("no-such-bank", doc("a", "text"))


async def test_bad_documents_are_refused_and_nothing_is_written(harness: MemoryHarness) -> None:
    bank = await harness.vector_bank()
    good = doc("good", "A perfectly fine document about gardening tools.")
    with pytest.raises(InvalidRequest, match="document 'blank' is empty"):
        await harness.insert(bank, good, doc("blank", "   \n  "))
    with pytest.raises(PayloadTooLarge, match=r"document 'huge'.*max_document_bytes"):
        await harness.insert(bank, good, doc("huge", "x" * (MAX_DOCUMENT_BYTES + 1)))
    with pytest.raises(InvalidRequest, match="more than once"):
        await harness.insert(bank, good, good)
    with pytest.raises(InvalidRequest, match=re.escape("http://127.0.0.1:9/missing.txt")):
        await harness.insert(bank, good, doc("gone", "http://127.0.0.1:9/missing.txt"))
    assert await harness.document_ids(bank, "gardening tools", mode="hybrid") == []


async def test_an_embedding_dimension_that_does_not_match_the_bank_is_refused(harness: MemoryHarness) -> None:
    bank_id = "bank-256-dims-" + harness.name
    bank = VectorMemoryBank(
        identifier=bank_id,
        provider_resource_id=bank_id,
        provider_id="memory",
        embedding_model=MINILM,
        chunk_size_in_tokens=64,
        embedding_dimension=256,
    )
    await harness.provider.register_memory_bank(bank)
    request = {"bank_id": bank_id, "documents": [doc("d", "MiniLM makes 384 numbers")]}
    with pytest.raises(InvalidRequest, match=r"384-dimensional.*256-dimensional"):
        await harness.provider.insert_documents(InsertDocumentsRequest.model_validate(request))
    with pytest.raises(InvalidRequest, match="384-dimensional"):
        await harness.provider.query_documents(QueryDocumentsRequest(bank_id=bank_id, query="numbers"))
    # The same bank cannot be reopened with another dimension while it exists.
    with pytest.raises(InvalidRequest, match="already holds 256-dimensional vectors"):
        await harness.provider.register_memory_bank(bank.model_copy(update={"embedding_dimension": 384}))
    await harness.provider.unregister_memory_bank(bank_id)


async def test_queries_must_be_text(harness: MemoryHarness, animals: str) -> None:
    with pytest.raises(InvalidRequest, match="empty"):
        await harness.query(animals, "  ")
    with pytest.raises(InvalidRequest, match="text only"):
        await harness.query(animals, [{"type": "image", "data": "aGVsbG8="}])
    with pytest.raises(InvalidRequest, match=r"params\.mode"):
        await harness.query(animals, "cats", mode="telepathy")
    with pytest.raises(InvalidRequest, match=r"params\.max_chunks"):
        await harness.query(animals, "cats", max_chunks=0)


async def test_unregistering_a_bank_deletes_its_documents(harness: MemoryHarness) -> None:
    bank = await harness.vector_bank()
    await harness.insert(bank, doc("secret", "The vault combination is 12-34-56."))
    await harness.stack.memory_banks.unregister_memory_bank(bank)
    with pytest.raises(MemoryBankNotFound):
        await harness.query(bank, "vault")
    await harness.vector_bank(bank_id=bank)
    assert await harness.document_ids(bank, "vault combination") == []


async def test_keyword_banks_rank_by_bm25(harness: MemoryHarness) -> None:
    bank = await harness.register({"memory_bank_type": "keyword"})
    await harness.insert(
        bank,
        doc("bread", "Knead the dough, let the dough rise, then bake the bread.", course="main"),
        doc("soup", "Simmer the onions slowly for a rich soup.", course="starter"),
        doc("cake", "Whisk eggs and sugar; fold in flour; bake the cake.", course="dessert"),
    )
    response = await harness.query(bank, "how long should dough rise", max_chunks=5)
    assert [c.document_id for c in response.chunks] == ["bread"]
    assert set(await harness.document_ids(bank, "bake", max_chunks=5)) == {"bread", "cake"}
    assert await harness.document_ids(bank, "bake", filters={"course": "dessert"}) == ["cake"]
    with pytest.raises(InvalidRequest, match="keyword"):
        await harness.query(bank, "bake", mode="vector")


async def test_key_value_banks_return_the_document_stored_under_a_key(harness: MemoryHarness) -> None:
    bank = await harness.register({"memory_bank_type": "keyvalue"})
    await harness.insert(bank, doc("user:42:name", "Ada Lovelace"), doc("user:42:city", "London"))
    response = await harness.query(bank, "user:42:city")
    assert [(c.document_id, c.content) for c in response.chunks] == [("user:42:city", "London")]
    assert response.scores == [1.0]
    await harness.insert(bank, doc("user:42:city", "Paris"))
    assert (await harness.query(bank, "user:42:city")).chunks[0].content == "Paris"
    assert (await harness.query(bank, "user:43:city")).chunks == []


async def test_recall_at_3_on_the_labelled_set(harness: MemoryHarness) -> None:
    bank = await harness.vector_bank(chunk_size=128, overlap=0)
    await harness.insert(bank, *(doc(i, text) for i, text in DOCUMENTS.items()))
    hits = 0
    misses: list[str] = []
    for question, answer in QUESTIONS.items():
        found = await harness.document_ids(bank, question, max_chunks=3)
        if answer in found:
            hits += 1
        else:
            misses.append(f"{question!r} -> {found}, wanted {answer}")
    recall = hits / len(QUESTIONS)
    print(f"recall@3 {harness.name}: {recall:.3f}")
    assert recall >= RECALL_AT_3_BAR, misses


async def test_a_restart_keeps_banks_and_documents(harness: MemoryHarness, servers: Servers, tmp_path: Path) -> None:
    first = await MemoryHarness.start(harness.name, tmp_path, servers)
    try:
        vector = await first.vector_bank(bank_id="kept-vectors")
        keyword = await first.register({"memory_bank_type": "keyword"}, bank_id="kept-keywords")
        await first.insert(vector, doc("tides", DOCUMENTS["tides"], topic="sea"))
        await first.insert(keyword, doc("bees", DOCUMENTS["bees"]))
    finally:
        await first.shutdown()
    second = await MemoryHarness.start(harness.name, tmp_path, servers)
    try:
        banks = {bank.identifier for bank in await second.stack.memory_banks.list_memory_banks()}
        assert {"kept-vectors", "kept-keywords"} <= banks
        response = await second.query(vector, "Why does the sea rise and fall?", filters={"topic": "sea"})
        assert [c.document_id for c in response.chunks] == ["tides"]
        assert await second.document_ids(vector, "moon", mode="keyword") == ["tides"]
        assert await second.document_ids(keyword, "waggle dance") == ["bees"]
        await second.insert(vector, doc("glaciers", DOCUMENTS["glaciers"]))
        assert set(await second.document_ids(vector, "ice and sea", max_chunks=5)) == {"tides", "glaciers"}
    finally:
        await second.shutdown()


async def test_the_chunks_of_named_documents_are_read_back(harness: MemoryHarness, animals: str) -> None:
    # Keyword search on another replica catches up with a write by reading just these chunks.
    chunks = await harness.provider.vectors.document_chunks(animals, ["cat", "rust", "no-such-document"])
    assert sorted((chunk.document_id, chunk.chunk_index) for chunk in chunks) == [("cat", 0), ("rust", 0)]
    assert {chunk.document_id: chunk.metadata["kind"] for chunk in chunks} == {"cat": "animal", "rust": "tech"}
    assert all("Cats are small" in chunk.content for chunk in chunks if chunk.document_id == "cat")
