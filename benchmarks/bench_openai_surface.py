"""What the OpenAI agent and retrieval surface costs, each figure beside its baseline from the
same run:

  * a Responses turn against the same chat completion through the stack (remote::vllm in front
    of the fake OpenAI backend, so the model costs nearly nothing and the stack's own work shows);
  * vector store search p50 at N chunks (real all-MiniLM-L6-v2 embeddings, FAISS);
  * file ingestion into a vector store against raw embedding of the same chunks through
    /v1/embeddings on the same server.

    python -m benchmarks.bench_openai_surface [--requests 300] [--chunks 10000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import openai

from benchmarks.harness import MODEL, fake_backend, percentile, ratio, remote_vllm_config, stack, table

MINILM = "all-MiniLM-L6-v2"
WORDS = (
    "river mountain lantern copper violin harbour meadow glacier compass orchard falcon "
    "quartz ember willow canyon beacon saffron tundra cobalt prairie"
).split()


def surface_config(backend_url: str, state: Path) -> dict[str, Any]:
    config = remote_vllm_config(backend_url, state)
    config["providers"]["inference"].append(
        {"provider_id": "st", "provider_type": "inline::sentence-transformers", "config": {"device": "cpu"}}
    )
    config["providers"]["memory"] = [
        {"provider_id": "faiss", "provider_type": "inline::faiss", "config": {"persist_dir": str(state / "faiss")}}
    ]
    config["models"].append(
        {"model_id": MINILM, "model_type": "embedding", "provider_id": "st", "metadata": {"embedding_dimension": 384}}
    )
    return config


def timed(call: Any, count: int) -> list[float]:
    samples = []
    for i in range(count + count // 10):
        started = time.perf_counter()
        call()
        if i >= count // 10:  # the first tenth warms connections and caches
            samples.append((time.perf_counter() - started) * 1000)
    return samples


def sentence(index: int) -> str:
    """A distinct sentence of about 100 tokens: one chunk of a static 100-token chunking."""
    words = [WORDS[(index * 7 + k * 3) % len(WORDS)] for k in range(60)]
    return f"Record {index}: " + " ".join(words) + "."


def turn_overhead(client: openai.OpenAI, requests: int) -> list[list[Any]]:
    prompt = "Say hello."
    chat = timed(
        lambda: client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": prompt}]), requests
    )
    kept = timed(lambda: client.responses.create(model=MODEL, input=prompt), requests)
    unstored = timed(lambda: client.responses.create(model=MODEL, input=prompt, store=False), requests)
    base = percentile(chat, 0.5)
    rows = [["chat completion (baseline)", f"{base:.2f}", f"{percentile(chat, 0.99):.2f}", "-", "1.00x"]]
    for name, samples in (("response, stored", kept), ("response, store=False", unstored)):
        p50 = percentile(samples, 0.5)
        rows.append([name, f"{p50:.2f}", f"{percentile(samples, 0.99):.2f}", f"{p50 - base:+.2f}", ratio(p50, base)])
    return rows


def retrieval(client: openai.OpenAI, base_url: str, chunks: int) -> tuple[list[list[Any]], list[list[Any]]]:
    texts = [sentence(i) for i in range(chunks)]
    strategy: Any = {"type": "static", "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 0}}
    store = client.vector_stores.create(name="bench", chunking_strategy=strategy)

    # Ingestion: files of 500 sentences, attached one by one; raw: the same texts embedded directly.
    per_file = 500
    ingest_s = 0.0
    for start in range(0, chunks, per_file):
        body = "\n\n".join(texts[start : start + per_file]).encode()
        uploaded = client.files.create(file=(f"part{start}.txt", body), purpose="assistants")
        began = time.perf_counter()
        attached = client.vector_stores.files.create(vector_store_id=store.id, file_id=uploaded.id)
        ingest_s += time.perf_counter() - began
        assert attached.status == "completed", attached.last_error
    with httpx.Client(timeout=600) as http:
        began = time.perf_counter()
        for start in range(0, chunks, per_file):
            http.post(f"{base_url}/v1/embeddings", json={"model": MINILM, "input": texts[start : start + per_file]})
        raw_s = time.perf_counter() - began
    counted = client.vector_stores.retrieve(store.id)
    ingestion_rows = [
        ["raw embedding via /v1/embeddings (baseline)", f"{chunks / raw_s:.0f}", "1.00x"],
        [
            f"vector store file ingestion ({counted.file_counts.completed} files)",
            f"{chunks / ingest_s:.0f}",
            ratio(raw_s, ingest_s),
        ],
    ]

    queries = [f"{WORDS[i % len(WORDS)]} {WORDS[(i * 5) % len(WORDS)]} record" for i in range(50)]
    embed = timed(lambda: httpx.post(f"{base_url}/v1/embeddings", json={"model": MINILM, "input": queries[0]}), 50)
    rows = [["embed one query (baseline)", f"{percentile(embed, 0.5):.2f}", f"{percentile(embed, 0.99):.2f}", "1.00x"]]
    base = percentile(embed, 0.5)
    for mode in ("vector", "keyword", "hybrid"):
        cycle = iter(queries * 10)
        samples = timed(
            lambda mode=mode, cycle=cycle: client.vector_stores.search(
                vector_store_id=store.id, query=next(cycle), max_num_results=10, extra_body={"search_mode": mode}
            ),
            50,
        )
        p50 = percentile(samples, 0.5)
        rows.append([f"search, {mode}", f"{p50:.2f}", f"{percentile(samples, 0.99):.2f}", ratio(p50, base)])
    return ingestion_rows, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--chunks", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-openai-") as folder, fake_backend(core=0) as backend:
        with stack(surface_config(backend.url, Path(folder)), core=1) as server:
            client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="none", max_retries=0, timeout=600)
            print(f"== a Responses turn vs the same chat completion, {args.requests} sequential requests (ms)")
            print(table(["", "p50", "p99", "added", "ratio"], turn_overhead(client, args.requests)))
            if not args.chunks:
                return
            ingestion, search = retrieval(client, server.url, args.chunks)
            print(f"\n== ingestion of {args.chunks} chunks (chunks/s; ratio: ingestion speed / raw embedding speed)")
            print(table(["", "chunks/s", "ratio"], ingestion))
            print(f"\n== vector store search at {args.chunks} chunks, 50 queries each (ms)")
            print(table(["", "p50", "p99", "ratio"], search))


if __name__ == "__main__":
    main()
