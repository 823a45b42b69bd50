"""Query parameters (`params` of /memory/query) and how hybrid search fuses its two rankings.

params:
  max_chunks (alias top_k)  how many chunks to return (default 3, as Llama Stack)
  score_threshold           drop chunks scoring below it (the score of the mode: cosine
                            similarity, BM25, or the fused hybrid score)
  filters                   {key: scalar}: only chunks whose document metadata has key == scalar
  mode                      "vector" | "keyword" | "hybrid" (cosine and normalised BM25, weighted);
                            unset: the bank's default (hybrid for vector banks, see engine.py)
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, ValidationError

from llama_stack.apis.errors import InvalidRequest

from .types import Filters, ScoredChunk, StoredChunk

SearchMode = Literal["vector", "keyword", "hybrid"]
RRF_K = 60
MAX_CHUNKS_LIMIT = 1000


class QueryParams(BaseModel):
    # Clients send other knobs (e.g. max_tokens_in_context); they are ignored, not refused.
    model_config = ConfigDict(extra="ignore")

    max_chunks: int = Field(default=3, ge=1, le=MAX_CHUNKS_LIMIT)
    score_threshold: float | None = None
    filters: dict[str, StrictBool | StrictInt | StrictFloat | StrictStr] = Field(default_factory=dict)
    mode: SearchMode | None = None

    @property
    def scalar_filters(self) -> Filters:
        return dict(self.filters)


def parse_query_params(params: dict[str, Any]) -> QueryParams:
    values = dict(params)
    if "top_k" in values and "max_chunks" not in values:
        values["max_chunks"] = values.pop("top_k")
    if values.get("filters") is None:
        values.pop("filters", None)
    try:
        return QueryParams.model_validate(values)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        hint = " (filter values are strings, numbers or booleans)" if where.startswith("filters") else ""
        raise InvalidRequest(f"params.{where}: {first['msg']}{hint}") from e


def reciprocal_rank_fusion(rankings: list[list[ScoredChunk]], k: int = RRF_K) -> list[ScoredChunk]:
    """Fuse ranked lists: each chunk scores the sum of 1 / (k + rank) over the lists it is in.
    The hybrid fusion before weighted_fusion; benchmarks/bench_retrieval_quality.py compares them."""
    scores: dict[tuple[str, int], float] = {}
    chunks: dict[tuple[str, int], StoredChunk] = {}
    for ranking in rankings:
        for rank, scored in enumerate(ranking, start=1):
            key = scored.chunk.key
            scores[key] = scores.get(key, 0.0) + 1.0 / (k + rank)
            chunks[key] = scored.chunk
    ordered = sorted(scores.items(), key=lambda item: (-item[1], item[0]))
    return [ScoredChunk(chunks[key], score) for key, score in ordered]


def weighted_fusion(
    by_vector: list[ScoredChunk],
    by_keyword: list[ScoredChunk],
    keyword_ceiling: float,
    vector_weight: float,
    limit: int | None = None,
) -> list[ScoredChunk]:
    """Fuse by score, not rank: vector_weight * cosine + (1 - vector_weight) * BM25 / keyword_ceiling.

    Ranks throw away how sure each side is: with reciprocal rank fusion the first keyword hit of a
    query whose words are all common counts as much as an exact match of a rare error code. Here
    the BM25 score is divided by `keyword_ceiling`, the score a chunk would get holding every query
    term the bank knows (BM25Index.ceiling), so it says what share of the query's weight a chunk
    matched, in [0, 1] like the cosine similarity. A chunk absent from one list is given that list's
    lowest score, the most it could have had there. Ties go by chunk key; `limit`: only the best
    that many are returned (the caller keeps no more, so no more results are built).
    """
    vector_floor = by_vector[-1].score if by_vector else 0.0
    keyword_floor = by_keyword[-1].score if by_keyword else 0.0
    # key -> [cosine, BM25, chunk]: one dict and one lookup per candidate (this runs on every
    # hybrid query, over a hundred candidates).
    found: dict[tuple[str, int], list[Any]] = {}
    for scored in by_vector:
        found[scored.chunk.key] = [scored.score, keyword_floor, scored.chunk]
    for scored in by_keyword:
        key = scored.chunk.key
        entry = found.get(key)
        if entry is None:
            found[key] = [vector_floor, scored.score, scored.chunk]
        else:
            entry[1], entry[2] = scored.score, scored.chunk
    scale = 1.0 / keyword_ceiling if keyword_ceiling > 0 else 0.0
    keyword_weight = 1 - vector_weight
    ordered = sorted(
        (-(vector_weight * cosine + keyword_weight * min(1.0, bm25 * scale)), key, chunk)
        for key, (cosine, bm25, chunk) in found.items()
    )
    return [ScoredChunk(chunk, -negated) for negated, _, chunk in ordered[:limit]]


def apply_threshold(results: list[ScoredChunk], threshold: float | None, k: int) -> list[ScoredChunk]:
    kept = results if threshold is None else [r for r in results if r.score >= threshold]
    return kept[:k]
