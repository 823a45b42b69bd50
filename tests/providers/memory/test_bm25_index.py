"""The numpy inverted index (bm25.py) against the pure-Python BM25 it replaced (bm25_python.py):
after any sequence of writes, replacements and deletions, compactions included, both return the
same chunks with the same scores (float equality), with and without filters. And the terms that
make keyword search find identifiers and accented words."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from llama_stack.providers.memory.common import bm25
from llama_stack.providers.memory.common.bm25 import BM25Index
from llama_stack.providers.memory.common.bm25_python import PythonBM25Index
from llama_stack.providers.memory.common.posting_merge import merge_postings
from llama_stack.providers.memory.common.text_terms import terms
from llama_stack.providers.memory.common.types import StoredChunk

WORDS = "lantern river map library pump error ERR-4012 café cafe purring purrs dough rise bake v2.3.1 x86_64".split()


def random_write(rng: random.Random) -> tuple[list[str], list[StoredChunk]]:
    documents = sorted({f"d{rng.randrange(300)}" for _ in range(rng.randrange(1, 4))})
    chunks = [
        StoredChunk(document, index, " ".join(rng.choices(WORDS, k=rng.randrange(1, 12))), 1, {"g": rng.randrange(3)})
        for document in documents
        for index in range(rng.randrange(0, 3))  # 0 chunks: the document is deleted
    ]
    return documents, chunks


@pytest.mark.parametrize("compact_after", [10, bm25.MIN_DEAD_TO_COMPACT])
def test_the_inverted_index_scores_exactly_as_the_python_reference(
    monkeypatch: pytest.MonkeyPatch, compact_after: int
) -> None:
    monkeypatch.setattr(bm25, "MIN_DEAD_TO_COMPACT", compact_after)
    rng = random.Random(7)
    fast, reference = BM25Index(), PythonBM25Index()
    for step in range(800):
        documents, chunks = random_write(rng)
        fast.replace_documents(documents, chunks)
        reference.replace_documents(documents, chunks)
        query = " ".join(rng.choices(WORDS, k=3))
        filters = {"g": 1} if step % 3 == 0 else {}
        k = rng.randrange(1, 20)
        got = [(r.chunk.key, r.score) for r in fast.search(query, k, filters)]
        assert got == [(r.chunk.key, r.score) for r in reference.search(query, k, filters)]
    assert len(fast) == len(reference)


def test_an_empty_index_and_unknown_terms_find_nothing() -> None:
    index = BM25Index()
    assert index.search("anything", 5, {}) == []
    index.add([StoredChunk("a", 0, "paper lanterns", 2)])
    assert index.search("zeppelin", 5, {}) == []
    index.remove_documents(["a"])
    assert index.search("lanterns", 5, {}) == [] and len(index) == 0


def test_identifiers_are_found_however_they_are_written() -> None:
    index = BM25Index()
    index.add(
        [
            StoredChunk("right", 0, "Printer error E-2041: the fuser is too hot.", 8),
            StoredChunk("parts", 0, "Printer errors E-2014 and X-2041 are paper jams.", 8),
        ]
    )
    for query in ("E-2041", "e2041", "E/2041"):
        assert index.search(query, 2, {})[0].chunk.document_id == "right", query
    assert "e2041" in terms("code E-2041") and "version0" in terms("version0")


def test_accents_and_case_do_not_matter() -> None:
    assert terms("Café CRÈME Überprüfung") == terms("cafe creme uberprufung")


def zipf_chunks(rng: random.Random, vocabulary: list[str], start: int, count: int) -> list[StoredChunk]:
    """Chunks whose words follow a Zipf law, so a few terms are in most chunks (the lists pruning
    leaves out) and most are rare; lengths of 20 or 5 to 40 words: equal lengths tie scores."""
    weights = [1 / rank for rank in range(1, len(vocabulary) + 1)]
    chunks = []
    for i in range(start, start + count):
        length = 20 if i % 2 else rng.randrange(5, 40)
        words = rng.choices(vocabulary, weights=weights, k=length)
        chunks.append(StoredChunk(f"z{i % 900}", i // 900, " ".join(words), length, {"g": i % 3}))
    return chunks


@pytest.mark.parametrize(("cache_from", "drift"), [(1, 1.01), (1, 1.0), (10**9, 1.01)])
def test_pruned_search_matches_the_reference_on_skewed_terms(
    monkeypatch: pytest.MonkeyPatch, cache_from: int, drift: float
) -> None:
    """Top-k without scoring every posting (bm25.BM25Index._best) against the reference, over a
    skewed vocabulary, many k and writes between queries that move the average length (so the
    cached factors are extended, trusted within their drift, and recomputed)."""
    monkeypatch.setattr(bm25, "_CACHE_MIN_POSTINGS", cache_from)
    monkeypatch.setattr(bm25, "_DRIFT", drift)  # 1.0: recomputed whenever the average moved
    rng = random.Random(11)
    vocabulary = [f"w{rank}" for rank in range(400)]
    fast, reference = BM25Index(), PythonBM25Index()
    initial = zipf_chunks(rng, vocabulary, 0, 2500)
    fast.add(initial)
    reference.add(initial)
    for step in range(120):
        if step % 10 == 5:
            changed = zipf_chunks(rng, vocabulary, rng.randrange(3000), rng.randrange(1, 60))
            gone = [f"z{rng.randrange(900)}" for _ in range(rng.randrange(0, 20))]
            fast.replace_documents(gone, changed)
            reference.replace_documents(gone, changed)
        query = " ".join(rng.choices(vocabulary[:3] + vocabulary[40:], k=rng.randrange(1, 6)))
        for k in (1, 5, 50, 400):
            got = [(r.chunk.key, r.score) for r in fast.search(query, k, {})]
            assert got == [(r.chunk.key, r.score) for r in reference.search(query, k, {})], (query, k)


def test_concurrent_searches_agree() -> None:
    """Searches from several threads at once give the answers one thread does."""
    rng = random.Random(3)
    vocabulary = [f"w{rank}" for rank in range(200)]
    index = BM25Index()
    index.add(zipf_chunks(rng, vocabulary, 0, 2000))
    queries = [" ".join(rng.choices(vocabulary, k=4)) for _ in range(40)]
    expected = [[(r.chunk.key, r.score) for r in index.search(q, 20, {})] for q in queries]
    with ThreadPoolExecutor(4) as pool:
        for _ in range(5):
            got = list(pool.map(lambda q: [(r.chunk.key, r.score) for r in index.search(q, 20, {})], queries))
            assert got == expected


def test_rare_terms_held_by_fewer_than_k_chunks_set_the_floor_together() -> None:
    """Query terms each held by fewer than k chunks are scored together first (their union gives
    the first floor, so the commonest terms can still be left out); same answers as the reference,
    also after the rare terms' chunks are replaced and deleted."""
    rng = random.Random(5)
    vocabulary = [f"w{rank}" for rank in range(300)]
    fast, reference = BM25Index(), PythonBM25Index()
    chunks = zipf_chunks(rng, vocabulary, 0, 1800)
    rare = [StoredChunk(f"r{i}", 0, f"rare{i % 7} w0 w1 w{i % 50}", 4) for i in range(30)]
    for index in (fast, reference):
        index.add(chunks + rare)
    queries = ["rare1 rare2 w0", "rare3 rare4 rare5 w0 w1", "rare6 w1 w2 w3", "rare0 w0"]
    for step in range(4):
        for query in queries:
            for k in (3, 10, 40):
                got = [(r.chunk.key, r.score) for r in fast.search(query, k, {})]
                assert got == [(r.chunk.key, r.score) for r in reference.search(query, k, {})], (step, query, k)
        gone = [f"r{rng.randrange(30)}" for _ in range(4)]
        changed = [StoredChunk(f"r{rng.randrange(30)}", 0, f"rare{rng.randrange(7)} w0 w2", 3) for _ in range(3)]
        for index in (fast, reference):
            index.replace_documents(gone, changed)


def test_merged_postings_are_the_live_union_sorted_with_summed_values() -> None:
    """posting_merge.merge_postings against a dict: lists of every length order, shared and
    disjoint rows, dead rows dropped, the callers' arrays left as they were."""
    rng = np.random.default_rng(4)
    for _ in range(50):
        size = int(rng.integers(1, 3000))
        lists = []
        for _ in range(int(rng.integers(1, 5))):
            rows = np.sort(rng.choice(size, int(rng.integers(0, size + 1)), replace=False)).astype(np.int32)
            lists.append((rows, rng.random(rows.size)))
        alive = rng.random(size) < 0.8
        before = [(rows.copy(), values.copy()) for rows, values in lists]
        expected: dict[int, float] = {}
        for rows, values in lists:
            for row, value in zip(rows.tolist(), values.tolist(), strict=True):
                expected[row] = expected.get(row, 0.0) + value
        for mask in (alive, None):
            rows, sums = merge_postings(lists, mask)
            wanted = sorted(row for row in expected if mask is None or mask[row])
            assert rows.tolist() == wanted
            assert sums.tolist() == pytest.approx([expected[row] for row in wanted])
        for (rows, values), (rows_before, values_before) in zip(lists, before, strict=True):
            assert np.array_equal(rows, rows_before) and np.array_equal(values, values_before)
