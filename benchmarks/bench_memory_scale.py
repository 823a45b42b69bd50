"""Vector search at scale, exact against approximate indexes, in one run:

for each backend and index kind, fill one bank to SIZE chunks straight through the provider's vector
store (its durable write path: FAISS's fsynced log and snapshots, pgvector's COPY transaction,
Qdrant's upserts), then time N unfiltered k=10 searches; print

- build: seconds to fill the bank (1,000 chunks per insert), and the store's insert rate;
- vs embed: (embedding + store insert) / embedding alone for the same chunks, where the embedding
  rate is all-MiniLM-L6-v2 (sentence-transformers, batch 32) on real chunk text measured in this
  run: the share of raw embedding throughput an insert keeps (target >= 0.9);
- p50 / p99 of the store's search (the query's own embedding, one MiniLM call, is not included),
  with the default search setting (FAISS HNSW's ef_search, IVF's probe count, pgvector's
  hnsw.ef_search derived from k), then again on the same index with each value of --hnsw-efs,
  --ivf-probes and --pg-efs (rows without a build time): the speed/recall trade-off in one run;
- recall@10: the share of the exact top 10 (numpy over the same vectors, in this run) found;
- CPU ms/query: CPU time the search took, in this process and (pgvector) in the Postgres backends
  serving it, per query: what a query costs on an idle core, where p50 also counts the waits for
  a core on a loaded machine;
- index B/chunk: bytes of the vector index per chunk (FAISS: the serialised index plus ids; pgvector:
  table + indexes, so also the text; Qdrant local: its folder), and RSS B/chunk for in-process stores.

Vectors are SYNTHETIC, 384-dimensional unit vectors drawn around 1,000 cluster centres with a
32-dimensional spread plus isotropic noise (embeddings of real text are clustered and of low
intrinsic dimension; uniform random vectors are not, and no index beats a scan on them). Queries
are fresh draws from the same distribution. Postgres comes from pgserver unless --pg-dsn.
Qdrant runs in qdrant-client's local mode, which has no HNSW (it always scans). For pgvector's
HNSW bank the run also prints the plan of one query (EXPLAIN ANALYZE of the provider's statement):
the scan node and the pages it read. The pgvector rows (benchmarks/scale_pgvector.py) end with
rows inserted into the built graph, staging off and staged, and searches while they are staged,
during their background merge and after it.

    python -m benchmarks.bench_memory_scale                        # 100k per backend, 1M for FAISS
    python -m benchmarks.bench_memory_scale --size 20000 --million 0 --queries 50   # a quick run
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.bench_memory import CHUNK, OVERLAP, load_raw_model, postgres, raw_encode, synthetic_documents
from benchmarks.harness import percentile, rss_mb, table
from llama_stack.providers.memory.common.chunking import chunk_text
from llama_stack.providers.memory.common.config import VectorIndexConfig
from llama_stack.providers.memory.common.types import StoredChunk, Vectors, VectorStore, normalise

DIMENSION = 384
CENTRES, SPREAD_DIMS = 1000, 32
FILL_BATCH = 1000
K = 10
BANK = "scale"


class Synthetic:
    """Clustered unit vectors: centre + spread in a shared low-dimensional subspace + noise."""

    def __init__(self, seed: int = 5) -> None:
        rng = np.random.default_rng(seed)
        self.centres = normalise(rng.standard_normal((CENTRES, DIMENSION)).astype(np.float32))
        self.basis = rng.standard_normal((SPREAD_DIMS, DIMENSION)).astype(np.float32) / np.sqrt(DIMENSION)

    def draw(self, rows: int, seed: int) -> Vectors:
        rng = np.random.default_rng(seed)
        picks = rng.integers(0, CENTRES, rows)
        spread = rng.standard_normal((rows, SPREAD_DIMS)).astype(np.float32) @ self.basis
        noise = 0.02 * rng.standard_normal((rows, DIMENSION)).astype(np.float32)
        return normalise(self.centres[picks] + 0.8 * spread + noise)

    def bank(self, rows: int) -> Vectors:
        blocks = [self.draw(min(100_000, rows - start), seed=1000 + start) for start in range(0, rows, 100_000)]
        return np.concatenate(blocks) if blocks else np.zeros((0, DIMENSION), np.float32)


def exact_top(vectors: Vectors, queries: Vectors) -> list[set[int]]:
    tops = []
    for query in queries:
        scores = vectors @ query
        tops.append(set(np.argpartition(-scores, K)[:K].tolist()))
    return tops


@dataclass
class Row:
    label: str
    size: int
    build_s: float | None  # None: a second setting searched on an index built for an earlier row
    p50_ms: float | None  # None: a row of inserts only
    p99_ms: float | None
    recall: float | None
    cpu_ms: float | None
    index_bytes: float | None
    rss_bytes: float | None

    @property
    def insert_rate(self) -> float | None:
        return None if self.build_s is None else self.size / self.build_s


async def fill(store: VectorStore, vectors: Vectors, first: int = 0) -> float:
    """Seconds to insert `vectors` as documents of FILL_BATCH chunks; chunk n's text is str(first + n)."""
    started = time.perf_counter()
    for start in range(first, first + len(vectors), FILL_BATCH):
        part = vectors[start - first : start - first + FILL_BATCH]
        name = f"d{start}"  # unique whatever `first` is
        chunks = [StoredChunk(name, i, str(start + i), 64, {}) for i in range(len(part))]
        await store.replace_documents(BANK, [name], chunks, part)
    return time.perf_counter() - started


ServerCpu = Callable[[], float]  # CPU seconds used so far by the server processes answering the store


def no_server() -> float:
    return 0.0  # an in-process store: its CPU is this process's


def process_cpu_seconds(pids: list[int]) -> float:
    """utime + stime of these processes, from /proc (clock ticks: 10 ms resolution)."""
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # a backend that has gone
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


async def search_timings(
    store: VectorStore, queries: Vectors, exact: list[set[int]], server: ServerCpu
) -> tuple[float, float, float, float]:
    """p50 ms, p99 ms, recall@10 and CPU ms per query of unfiltered k=10 searches, after a warm-up."""
    await store.search(BANK, queries[:1], K, {})
    timings, found = [], 0
    cpu_before = time.process_time() + server()
    for query, truth in zip(queries, exact, strict=True):
        started = time.perf_counter()
        hits = await store.search(BANK, query[None, :], K, {})
        timings.append((time.perf_counter() - started) * 1000)
        found += len(truth & {int(hit.chunk.content) for hit in hits})
    cpu_ms = (time.process_time() + server() - cpu_before) * 1000 / len(queries)
    return percentile(timings, 0.5), percentile(timings, 0.99), found / (K * len(queries)), cpu_ms


async def measure(
    label: str,
    store: VectorStore,
    vectors: Vectors,
    queries: Vectors,
    exact: list[set[int]],
    size_of: Callable[[], float],
    server: ServerCpu = no_server,
) -> Row:
    before = rss_mb(os.getpid())
    await store.open_bank(BANK, DIMENSION)
    build_s = await fill(store, vectors)
    rss = (rss_mb(os.getpid()) - before) * 2**20 / len(vectors)
    p50, p99, recall, cpu_ms = await search_timings(store, queries, exact, server)
    index_bytes = await asyncio.to_thread(size_of)
    return Row(label, len(vectors), build_s, p50, p99, recall, cpu_ms, index_bytes / len(vectors), rss)


async def resettings(
    label: str,
    store: VectorStore,
    settings: VectorIndexConfig,
    size: int,
    queries: Vectors,
    exact: list[set[int]],
    server: ServerCpu = no_server,
) -> Row:
    """The filled bank searched again under other settings of the same index kind (no rebuild)."""
    store.choose_index(BANK, settings)
    await store.open_bank(BANK, DIMENSION)  # an open bank takes its new settings
    p50, p99, recall, cpu_ms = await search_timings(store, queries, exact, server)
    return Row(label, size, None, p50, p99, recall, cpu_ms, None, None)


def folder_bytes(folder: Path, pattern: str = "**/*") -> float:
    return float(sum(p.stat().st_size for p in folder.glob(pattern) if p.is_file()))


async def faiss_rows(
    kind: str, vectors: Vectors, queries: Vectors, exact: list[set[int]], state: Path, sweep: list[int]
) -> list[Row]:
    """The bank built with the provider's defaults, then searched with each value of `sweep`
    (HNSW: ef_search; IVF: probe count)."""
    from llama_stack.providers.memory.faiss.ann import default_probe
    from llama_stack.providers.memory.faiss.store import FaissVectorStore

    folder = state / f"faiss-{kind}-{len(vectors)}"
    folder.mkdir()
    settings = VectorIndexConfig.model_validate({"kind": kind})
    store = FaissVectorStore(folder, settings)

    def index_size() -> float:
        import faiss

        rows = store.banks[BANK].rows  # vectors and graph or lists, plus 9 bytes per row of ids and liveness
        return float(faiss.serialize_index(rows.index).nbytes + 9 * len(rows.ids))

    try:
        row = await measure(f"faiss {kind}", store, vectors, queries, exact, index_size)
        index = store.banks[BANK].rows.index
        if kind == "hnsw":
            row.label += f" (ef_search {settings.hnsw_ef_search}, default)"
            field = "hnsw_ef_search"
        elif kind == "ivf":
            row.label += f" ({index.nlist} lists, nprobe {default_probe(index.nlist)}, default)"
            field = "ivf_probe"
            sweep = [max(16, index.nlist // 8), *sweep]  # the former default: an eighth of the lists
        rows = [row]
        for value in sweep if kind in ("hnsw", "ivf") else []:
            label = f"faiss {kind} (ef_search {value})" if kind == "hnsw" else f"faiss ivf (nprobe {value})"
            other = settings.model_copy(update={field: value})
            rows.append(await resettings(label, store, other, len(vectors), queries, exact))
        return rows
    finally:
        await store.drop_bank(BANK)
        await store.close()


async def qdrant_row(vectors: Vectors, queries: Vectors, exact: list[set[int]], state: Path) -> Row:
    from llama_stack.providers.memory.qdrant.store import QdrantStore

    folder = state / "qdrant"
    store = await QdrantStore.connect("scale", str(folder), None, None)
    try:
        store.choose_index(BANK, VectorIndexConfig(kind="hnsw"))
        return await measure("qdrant local (scans)", store, vectors, queries, exact, lambda: folder_bytes(folder))
    finally:
        await store.drop_bank(BANK)
        await store.close()


def embedding_rate(sample_chunks: int) -> float:
    """Chunks/s that raw MiniLM embeds real chunk text at (after a warm-up), in this run."""
    model = load_raw_model()
    texts: list[str] = []
    for text in synthetic_documents(max(4, sample_chunks // 3), 400):
        texts += [piece.text for piece in chunk_text(text, CHUNK, OVERLAP)]
    texts = texts[:sample_chunks]
    raw_encode(model, texts[:64])
    started = time.perf_counter()
    raw_encode(model, texts)
    return len(texts) / (time.perf_counter() - started)


def render(rows: list[Row], embed_rate: float) -> str:
    def share(row: Row) -> str:
        # embedding then storing each chunk: 1 / (1/embed + 1/insert), as a share of embedding alone
        if row.insert_rate is None or embed_rate == float("inf"):
            return "-"  # a re-search of a built index, or --embed-sample 0: not measured
        return f"{row.insert_rate / (row.insert_rate + embed_rate):.3f}"

    def number(value: float | None, form: str) -> str:
        return "-" if value is None else format(value, form)

    return table(
        ["backend / index", "chunks", "build s", "insert/s", "vs embed", "p50 ms", "p99 ms", "recall@10",
         "CPU ms/query", "index B/chunk", "RSS B/chunk"],
        [
            [r.label, f"{r.size:,}", number(r.build_s, ".1f"), number(r.insert_rate, ",.0f"), share(r),
             number(r.p50_ms, ".2f"), number(r.p99_ms, ".2f"), number(r.recall, ".3f"), number(r.cpu_ms, ".2f"),
             number(r.index_bytes, ",.0f"),
             number(r.rss_bytes, ",.0f")]
            for r in rows
        ],
    )  # fmt: skip


def show(rows: list[Row], new: list[Row], embed_rate: float) -> None:
    """Keep `new` for the final table and print its lines now, so a long run shows progress."""
    rows += new
    print("\n".join(render(new, embed_rate).splitlines()[2:]), flush=True)


async def main(args: argparse.Namespace) -> None:
    import faiss

    faiss.omp_set_num_threads(args.faiss_threads)
    embed_rate = embedding_rate(args.embed_sample) if args.embed_sample else float("inf")
    print(f"raw all-MiniLM-L6-v2 embedding: {embed_rate:,.0f} chunks/s ({args.embed_sample} chunks, batch 32)")
    print(f"command: python -m benchmarks.bench_memory_scale {' '.join(sys.argv[1:])}", flush=True)
    print("load average at the start: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()), flush=True)
    synthetic = Synthetic()
    queries = synthetic.draw(args.queries, seed=1)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as folder:
        state = Path(folder)
        if args.size:
            vectors = synthetic.bank(args.size)
            exact = exact_top(vectors, queries)
            for kind in args.faiss_kinds:
                sweep = args.hnsw_efs if kind == "hnsw" else args.ivf_probes
                show(rows, await faiss_rows(kind, vectors, queries, exact, state, sweep), embed_rate)
            if "pgvector" in args.backends:
                from benchmarks.scale_pgvector import pgvector_rows, with_work_mem  # it imports this module

                with postgres(args.pg_dsn, args.pg_shared_buffers) as dsn:
                    for kind in args.pg_kinds:
                        more = synthetic.draw(2 * args.pg_more, seed=7)
                        found = await pgvector_rows(
                            kind, vectors, queries, exact, with_work_mem(dsn), args.pg_efs, more
                        )
                        show(rows, found, embed_rate)
            if "qdrant" in args.backends:
                few = vectors[: args.qdrant_size]
                show(rows, [await qdrant_row(few, queries, exact_top(few, queries), state)], embed_rate)
            del vectors
        if args.million:
            vectors = synthetic.bank(args.million)
            exact = exact_top(vectors, queries)
            for kind in args.million_kinds:
                sweep = args.hnsw_efs if kind == "hnsw" else args.million_probes
                show(rows, await faiss_rows(kind, vectors, queries, exact, state, sweep), embed_rate)
    print()
    print(render(rows, embed_rate))
    print("load average at the end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=100_000, help="chunks per bank for every backend (0: skip)")
    parser.add_argument("--million", type=int, default=1_000_000, help="chunks of the large FAISS banks (0: skip)")
    parser.add_argument("--queries", type=int, default=200, help="searches per bank")
    parser.add_argument("--embed-sample", type=int, default=1000, help="chunks embedded to time MiniLM (0: skip)")
    parser.add_argument("--backends", nargs="*", default=["pgvector", "qdrant"], choices=["pgvector", "qdrant"])
    parser.add_argument("--faiss-kinds", nargs="*", default=["exact", "hnsw", "ivf"], help="FAISS kinds at --size")
    parser.add_argument(
        "--qdrant-size", type=int, default=10_000, help="chunks of the Qdrant bank (local mode upserts ~100/s here)"
    )
    parser.add_argument("--pg-kinds", nargs="*", default=["exact", "auto"], help="pgvector kinds at --size")
    parser.add_argument(
        "--million-kinds",
        nargs="*",
        default=["exact", "ivf"],
        help="FAISS kinds at --million (hnsw: ~20 min to build here)",
    )
    parser.add_argument(
        "--faiss-threads", type=int, default=1, help="FAISS OpenMP threads (on 2 shared cores, 1 is fastest)"
    )
    parser.add_argument(
        "--hnsw-efs", type=int, nargs="*", default=[64], help="FAISS HNSW ef_search values searched again"
    )
    parser.add_argument(
        "--ivf-probes",
        type=int,
        nargs="*",
        default=[],
        help="IVF probe counts searched again at --size (besides lists / 8, the former default)",
    )
    parser.add_argument(
        "--million-probes",
        type=int,
        nargs="*",
        default=[],
        help="IVF probe counts searched again at --million (besides lists / 8, the former default)",
    )
    parser.add_argument(
        "--pg-efs",
        type=int,
        nargs="*",
        default=[40, 128],
        help="pgvector hnsw.ef_search values searched again (128: the former default)",
    )
    parser.add_argument(
        "--pg-more",
        type=int,
        default=2000,
        help="chunks inserted into each filled pgvector bank at the end, twice: staging off, then staged",
    )
    parser.add_argument(
        "--pg-shared-buffers",
        default=None,
        help="restart pgserver's Postgres with this shared_buffers (e.g. 1GB; default: its 128MB)",
    )
    parser.add_argument("--pg-dsn", default=None, help="use this Postgres (with pgvector) instead of pgserver")
    asyncio.run(main(parser.parse_args()))
