"""Keyword and hybrid search at scale, in one run:

1. through the memory engine (inline::faiss with its default `auto` index + the SQLite kvstore),
   query latency p50/p99 of mode "vector", "keyword" and "hybrid" over the same bank, k = 5, and
   keyword's and hybrid's p50 as a multiple of vector's (the target: at most 2x). The
   query embedding is a stand-in that returns a random unit vector at no cost, so every mode is
   timed without the embedding model (the same for all three); keyword and hybrid include the
   generation read each query makes (keyword_indexes.py);
2. the BM25 index alone: search p50/p99 of the numpy inverted index (bm25.py) at k = 5, and p50 at
   k = 50 (the depth hybrid search asks of it), beside the pure-Python index it replaced
   (bm25_python.py), searching the same queries over the same chunks;
3. the cost of keeping it: building the index from every chunk of the bank (what the first keyword
   query, or a replica that fell too far behind, pays), the memory the index holds (tracemalloc),
   and inserting 100 one-chunk documents into the full index. Tracing memory builds the index a
   second time under tracemalloc, which is slow: --memory-sizes limits it to some sizes.

The corpus is synthetic English-like text: words drawn from a Zipf distribution over a 50,000-word
vocabulary, 60 words a chunk; queries take 2 to 5 words from the same distribution, so some hit
very common terms (long posting lists) and some rare ones.

    python -m benchmarks.bench_keyword_scale [--sizes 10000 100000] [--queries 200] [--python-sizes 10000 100000]
        [--memory-sizes 10000 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from llama_stack.apis.inference import EmbeddingsRequest, EmbeddingsResponse
from llama_stack.apis.memory import QueryDocumentsRequest
from llama_stack.apis.memory_banks import VectorMemoryBank
from llama_stack.distribution.outbound import OutboundPolicy
from llama_stack.distribution.provider import Api, Deps
from llama_stack.distribution.store import kvstore_from_config
from llama_stack.providers.memory.common.bm25 import BM25Index
from llama_stack.providers.memory.common.bm25_python import PythonBM25Index
from llama_stack.providers.memory.common.engine import MemoryEngine
from llama_stack.providers.memory.common.types import StoredChunk, VectorStore, normalise
from llama_stack.providers.memory.faiss import FaissMemoryConfig, get_provider_impl

DIMENSION = 384
VOCABULARY = 50_000
WORDS_PER_CHUNK = 60
FILL_BATCH = 2000
K = 5
HYBRID_DEPTH = 50  # what hybrid search asks each side for at k = 5 (engine.HYBRID_CANDIDATES)


class RandomEmbedder:
    """Inference stand-in: a random unit vector per text, instantly (no model in the timings)."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    async def embeddings(self, request: EmbeddingsRequest) -> EmbeddingsResponse:
        vectors = normalise(self.rng.standard_normal((len(request.contents), DIMENSION)).astype(np.float32))
        return EmbeddingsResponse(embeddings=vectors.tolist())


def vocabulary(rng: np.random.Generator) -> list[str]:
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    words: set[str] = set()
    while len(words) < VOCABULARY:
        words.add("".join(rng.choice(letters, size=int(rng.integers(4, 10)))))
    return sorted(words)


def zipf_words(rng: np.random.Generator, words: list[str], count: int) -> list[str]:
    drawn: list[str] = []
    while len(drawn) < count:
        ranks = rng.zipf(1.1, size=count * 2)
        drawn += [words[int(r) - 1] for r in ranks[ranks <= len(words)]]
    return drawn[:count]


def make_chunks(rng: np.random.Generator, words: list[str], start: int, count: int) -> list[StoredChunk]:
    drawn = zipf_words(rng, words, count * WORDS_PER_CHUNK)
    return [
        StoredChunk(f"doc-{start + i}", 0, " ".join(drawn[i * WORDS_PER_CHUNK : (i + 1) * WORDS_PER_CHUNK]), 80, {})
        for i in range(count)
    ]


def make_queries(rng: np.random.Generator, words: list[str], count: int) -> list[str]:
    return [" ".join(zipf_words(rng, words, int(rng.integers(2, 6)))) for _ in range(count)]


def percentiles(timings: list[float]) -> tuple[float, float]:
    ordered = sorted(timings)
    return statistics.median(ordered) * 1000, ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000


def time_each(search: Callable[[str], Any], queries: list[str]) -> tuple[float, float]:
    timings = []
    for query in queries:
        started = time.perf_counter()
        search(query)
        timings.append(time.perf_counter() - started)
    return percentiles(timings)


async def time_each_async(search: Callable[[str], Any], queries: list[str]) -> tuple[float, float]:
    timings = []
    for query in queries:
        started = time.perf_counter()
        await search(query)
        timings.append(time.perf_counter() - started)
    return percentiles(timings)


def measure_build(chunks: list[StoredChunk], make: Callable[[], Any], trace: bool) -> tuple[Any, float, int | None]:
    """The index, its build time, and (when `trace`) the memory it holds (a second build, under
    tracemalloc, which counts every allocation still alive after it; the chunks themselves are
    shared, not counted)."""
    gc.collect()
    started = time.perf_counter()
    index = make()
    index.add(chunks)
    seconds = time.perf_counter() - started
    if not trace:
        return index, seconds, None
    tracemalloc.start()
    traced = make()
    traced.add(chunks)
    gc.collect()
    held = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del traced
    return index, seconds, held


@dataclass
class Measured:
    index: Any
    build_s: float
    memory: int | None
    p50: float
    p99: float
    p50_hybrid_depth: float


def measure_index(chunks: list[StoredChunk], make: Callable[[], Any], queries: list[str], trace: bool) -> Measured:
    index, build_s, memory = measure_build(chunks, make, trace)
    p50, p99 = time_each(lambda query: index.search(query, K, {}), queries)
    p50_deep, _ = time_each(lambda query: index.search(query, HYBRID_DEPTH, {}), queries)
    return Measured(index, build_s, memory, p50, p99, p50_deep)


def mebibytes(memory: int | None) -> str:
    return "not traced" if memory is None else f"{memory / 2**20:.0f} MiB"


async def engine_modes(state: Path, chunks: list[StoredChunk], queries: list[str]) -> dict[str, tuple[float, float]]:
    config = FaissMemoryConfig(
        persist_dir=str(state / "faiss"), kvstore={"type": "sqlite", "db_path": str(state / "kv.db")}
    )
    kv = await kvstore_from_config(config.resolved_kvstore())
    deps = Deps({Api.inference: RandomEmbedder(1)}, outbound=OutboundPolicy(), kvstore=kv)
    engine = await get_provider_impl(config, deps)
    vectors = engine.vectors
    bank = VectorMemoryBank(
        identifier="bank",
        provider_resource_id="bank",
        provider_id="faiss",
        embedding_model="random",
        embedding_dimension=DIMENSION,
        chunk_size_in_tokens=128,
    )
    try:
        return await fill_and_query(engine, vectors, bank, chunks, queries)
    finally:
        await engine.shutdown()


async def fill_and_query(
    engine: MemoryEngine, vectors: VectorStore, bank: VectorMemoryBank, chunks: list[StoredChunk], queries: list[str]
) -> dict[str, tuple[float, float]]:
    await engine.register_memory_bank(bank)
    rng = np.random.default_rng(2)
    for start in range(0, len(chunks), FILL_BATCH):
        batch = chunks[start : start + FILL_BATCH]
        random = normalise(rng.standard_normal((len(batch), DIMENSION)).astype(np.float32))
        await vectors.replace_documents("bank", [c.document_id for c in batch], batch, random)
    results: dict[str, tuple[float, float]] = {}
    for mode in ("vector", "keyword", "hybrid"):

        async def query(text: str, mode: str = mode) -> None:
            await engine.query_documents(
                QueryDocumentsRequest(bank_id="bank", query=text, params={"max_chunks": K, "mode": mode})
            )

        await query(queries[0])  # the first keyword query builds the index: not a search latency
        results[mode] = await time_each_async(query, queries)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--python-sizes", type=int, nargs="*", default=[10_000, 100_000])
    parser.add_argument("--memory-sizes", type=int, nargs="*", default=None, help="default: every size")
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    memory_sizes = args.sizes if args.memory_sizes is None else args.memory_sizes
    rng = np.random.default_rng(0)
    words = vocabulary(rng)
    queries = make_queries(rng, words, args.queries)
    print(f"k={K}, {args.queries} queries of 2-5 Zipf words, {WORDS_PER_CHUNK}-word chunks, vocabulary {VOCABULARY}")
    print("\n1. through the engine (inline::faiss, default index: exact below 20k chunks, approximate past), ms")
    columns = ("vector p50", "keyword p50", "keyword p99", "hybrid p50", "hybrid p99", "kw/vec p50", "hyb/vec p50")
    print(f"{'chunks':>9}" + "".join(f"{column:>12}" for column in columns))
    rows_2: list[str] = []
    rows_3: list[str] = []
    for size in args.sizes:
        chunks = make_chunks(rng, words, 0, size)
        with tempfile.TemporaryDirectory() as folder:
            modes = asyncio.run(engine_modes(Path(folder), chunks, queries))
        vector, keyword, hybrid = modes["vector"], modes["keyword"], modes["hybrid"]
        figures = (vector[0], keyword[0], keyword[1], hybrid[0], hybrid[1])
        ratios = (keyword[0] / vector[0], hybrid[0] / vector[0])
        print(
            f"{size:>9}" + "".join(f"{figure:>12.2f}" for figure in figures) + "".join(f"{r:>11.2f}x" for r in ratios),
            flush=True,
        )
        new = measure_index(chunks, BM25Index, queries, size in memory_sizes)
        extra = make_chunks(rng, words, size, 100)
        started = time.perf_counter()
        for chunk in extra:
            new.index.replace_documents([chunk.document_id], [chunk])
        insert_ms = (time.perf_counter() - started) * 1000
        del new.index
        old, old_build = "not run", ""
        if size in args.python_sizes:
            reference = measure_index(chunks, PythonBM25Index, queries, size in memory_sizes)
            old = f"{reference.p50:>10.2f} {reference.p99:>10.2f}"
            old_build = f"   pure-Python build {reference.build_s:6.1f} s, {mebibytes(reference.memory)}"
        new_p50, new_p99, build_s = new.p50, new.p99, new.build_s
        rows_2.append(f"{size:>9} {new_p50:>10.2f} {new_p99:>10.2f} {new.p50_hybrid_depth:>10.2f} {old}")
        rows_3.append(f"{size:>9} {build_s:>9.1f} s {mebibytes(new.memory):>13} {insert_ms:>10.1f} ms{old_build}")
    print(f"\n2. the BM25 index alone, k={K} (and p50 at k={HYBRID_DEPTH}, hybrid's depth), ms")
    print(f"{'chunks':>9} {'numpy p50':>10} {'numpy p99':>10} {'k=50 p50':>10} {'python p50':>10} {'python p99':>10}")
    print("\n".join(rows_2))
    print("\n3. keeping the numpy index: full build, memory it holds, 100 one-chunk inserts into the full index")
    print(f"{'chunks':>9} {'build':>11} {'memory':>13} {'100 inserts':>13}")
    print("\n".join(rows_3))


if __name__ == "__main__":
    main()
