"""The numpy inverted index (bm25.py) against the pure-Python BM25 it replaced (bm25_python.py):
after any sequence of writes, replacements and deletions, compactions included, both return the
same chunks with the same scores (float equality), with and without filters. And the terms that
make keyword search find identifiers and accented words."""

from __future__ import annotations

import random

import pytest

from llama_stack.providers.memory.common import bm25
from llama_stack.providers.memory.common.bm25 import BM25Index
from llama_stack.providers.memory.common.bm25_python import PythonBM25Index
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
