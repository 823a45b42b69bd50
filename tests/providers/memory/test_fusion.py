"""Hybrid search's weighted fusion (query.weighted_fusion) against a plain restatement of its
definition: the same chunks, scores (float equality) and order, ties by chunk key, with and
without `limit`."""

from __future__ import annotations

import random

import pytest

from llama_stack.providers.memory.common.query import weighted_fusion
from llama_stack.providers.memory.common.types import ScoredChunk, StoredChunk


def reference_fusion(
    by_vector: list[ScoredChunk], by_keyword: list[ScoredChunk], ceiling: float, vector_weight: float
) -> list[ScoredChunk]:
    vector_floor = by_vector[-1].score if by_vector else 0.0
    keyword_floor = by_keyword[-1].score if by_keyword else 0.0
    cosine = {scored.chunk.key: scored.score for scored in by_vector}
    bm25 = {scored.chunk.key: scored.score for scored in by_keyword}
    chunks = {scored.chunk.key: scored.chunk for scored in [*by_vector, *by_keyword]}
    scale = 1.0 / ceiling if ceiling > 0 else 0.0
    scores = {
        key: vector_weight * cosine.get(key, vector_floor)
        + (1 - vector_weight) * min(1.0, bm25.get(key, keyword_floor) * scale)
        for key in chunks
    }
    ordered = sorted(scores.items(), key=lambda item: (-item[1], item[0]))
    return [ScoredChunk(chunks[key], score) for key, score in ordered]


def ranking(rng: random.Random, size: int, scale: float) -> list[ScoredChunk]:
    keys = rng.sample([(f"d{i % 40}", i // 40) for i in range(120)], size)
    # Few distinct scores, so ties (within a list and after fusion) are common.
    scored = [ScoredChunk(StoredChunk(doc, index, "text", 1), rng.randrange(6) * scale) for doc, index in keys]
    return sorted(scored, key=lambda s: -s.score)


@pytest.mark.parametrize("seed", range(40))
def test_weighted_fusion_matches_its_definition(seed: int) -> None:
    rng = random.Random(seed)
    by_vector = ranking(rng, rng.randrange(0, 30), 0.2)
    by_keyword = ranking(rng, rng.randrange(0, 30), 1.7)
    ceiling = rng.choice([0.0, 3.0, 9.5])
    expected = [(r.chunk.key, r.score) for r in reference_fusion(by_vector, by_keyword, ceiling, 0.6)]
    assert [(r.chunk.key, r.score) for r in weighted_fusion(by_vector, by_keyword, ceiling, 0.6)] == expected
    for limit in (1, 5, 50):
        got = weighted_fusion(by_vector, by_keyword, ceiling, 0.6, limit=limit)
        assert [(r.chunk.key, r.score) for r in got] == expected[:limit]
