"""Query parameters (`params` of /memory/query) and reciprocal rank fusion.

params:
  max_chunks (alias top_k)  how many chunks to return (default 3, as Llama Stack)
  score_threshold           drop chunks scoring below it (the score of the mode: cosine
                            similarity, BM25, or the fused reciprocal-rank score)
  filters                   {key: scalar}: only chunks whose document metadata has key == scalar
  mode                      "vector" | "keyword" | "hybrid" (vector + BM25 fused by reciprocal rank)
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
    """Fuse ranked lists: each chunk scores the sum of 1 / (k + rank) over the lists it is in."""
    scores: dict[tuple[str, int], float] = {}
    chunks: dict[tuple[str, int], StoredChunk] = {}
    for ranking in rankings:
        for rank, scored in enumerate(ranking, start=1):
            key = scored.chunk.key
            scores[key] = scores.get(key, 0.0) + 1.0 / (k + rank)
            chunks[key] = scored.chunk
    ordered = sorted(scores.items(), key=lambda item: (-item[1], item[0]))
    return [ScoredChunk(chunks[key], score) for key, score in ordered]


def apply_threshold(results: list[ScoredChunk], threshold: float | None, k: int) -> list[ScoredChunk]:
    kept = results if threshold is None else [r for r in results if r.score >= threshold]
    return kept[:k]
