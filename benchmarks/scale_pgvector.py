"""The pgvector rows of `benchmarks.bench_memory_scale` (see its docstring for the columns).

A bank is filled to the run's size, searched with the provider's defaults and each --pg-efs value;
then `more` chunks are inserted twice more, as a bank with a graph takes them:
- staging off (`staging_max_rows` 0, the former path): each row goes into the HNSW graph inside the
  user's insert, one index insert per row;
- staged (the default): the insert is a COPY into the staging table; the bank is then searched with
  the rows still staged (their merge held, as a second process merging would hold it), searched
  again while the background merge runs, and once more after it, and the merge's own rate (rows
  per second into the graph, off the insert path) is printed.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import psycopg

from benchmarks.bench_memory_scale import (
    BANK,
    DIMENSION,
    K,
    Row,
    ServerCpu,
    exact_top,
    fill,
    measure,
    process_cpu_seconds,
    resettings,
    search_timings,
)
from llama_stack.providers.memory.common.config import VectorIndexConfig
from llama_stack.providers.memory.common.types import Vectors


def with_work_mem(dsn: str) -> str:
    """The DSN with a session maintenance_work_mem that holds a 100k-row graph while it is built."""
    return dsn + ("&" if "?" in dsn else "?") + "options=-c%20maintenance_work_mem%3D1GB"


async def pgvector_rows(
    kind: str,
    vectors: Vectors,
    queries: Vectors,
    exact: list[set[int]],
    dsn: str,
    sweep: list[int],
    more: Vectors,
) -> list[Row]:  # `more`: twice --pg-more chunks, half for each way in
    """`auto` with its threshold at the bank's size: filled by COPY, then CREATE INDEX ... USING hnsw
    once (inside the timed build), which is how a bulk-loaded auto bank gets its graph. A bank with
    a graph is then searched again with each hnsw.ef_search of `sweep`; last, `more` chunks go in
    with staging off and then staged (the module's docstring)."""
    from llama_stack.providers.memory.pgvector.store import PgVectorStore, ef_search_for

    settings = VectorIndexConfig.model_validate({"kind": kind, "auto_threshold": len(vectors)})
    store = await PgVectorStore.open(dsn, f"scale{kind}{time.time_ns() % 10**9}", True, 2, index=settings)
    table_name = ""

    def table_size() -> float:
        with psycopg.connect(dsn) as conn:
            row = conn.execute("SELECT pg_total_relation_size(%s)", (table_name,)).fetchone()
        return float(row[0]) if row else 0.0

    def backends_cpu() -> float:
        """CPU seconds of the client backends other than this look-up's own: the store's pool."""
        with psycopg.connect(dsn) as conn:
            found = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
            ).fetchall()
        return process_cpu_seconds([int(pid) for (pid,) in found])

    try:
        store.choose_index(BANK, settings)
        await store.open_bank(BANK, DIMENSION)
        table_name = store.tables[BANK].merged.as_string(None)
        graph = kind != "exact"
        label = "pgvector exact" if not graph else f"pgvector hnsw ({kind}, ef_search {ef_search_for(settings, K)})"
        row = await measure(label, store, vectors, queries, exact, table_size, backends_cpu)
        row.rss_bytes = None  # Postgres holds the data in its own processes
        plan = await store.explain(BANK, queries[:1], K, {})
        keys = ("Scan", "Buffers", "Execution")
        wanted = [line.strip() for line in plan.splitlines() if any(key in line for key in keys)]
        with psycopg.connect(dsn) as conn:
            buffers = conn.execute("SHOW shared_buffers").fetchone()
        print(f"  plan of a {label} query (shared_buffers {buffers[0] if buffers else '?'}): ", end="")
        print(" | ".join(dict.fromkeys(w.split(" (")[0] for w in wanted)))
        rows = [row]
        for value in sweep if graph else []:
            other = settings.model_copy(update={"hnsw_ef_search": value})
            label = f"pgvector hnsw (ef_search {value})"
            rows.append(await resettings(label, store, other, len(vectors), queries, exact, backends_cpu))
        if len(more):
            store.choose_index(BANK, settings)
            await store.open_bank(BANK, DIMENSION)  # back to the default ef_search
            rows += await more_rows(store, graph, vectors, more, queries, backends_cpu)
        return rows
    finally:
        await store.drop_bank(BANK)
        await store.close()


async def more_rows(
    store: Any, graph: bool, vectors: Vectors, both: Vectors, queries: Vectors, server: ServerCpu
) -> list[Row]:
    """The first half of `both` into the filled bank with staging off, the second half staged;
    searches count every chunk inserted so far in their recall."""
    more, later = both[: len(both) // 2], both[len(both) // 2 :]
    staging_max_rows = store.staging_max_rows
    store.staging_max_rows = 0
    seconds = await fill(store, more, first=len(vectors))
    store.staging_max_rows = staging_max_rows
    what = "hnsw: more rows into its graph within the insert (staging off)" if graph else "exact: more rows"
    rows = [Row(f"pgvector {what}", len(more), seconds, None, None, None, None, None, None)]
    if not graph:
        return rows
    everything = np.concatenate([vectors, more, later])
    exact = exact_top(everything, queries)
    tables = store.tables[BANK]
    # Held, the merge leaves every row staged while they are searched; past staging_max_rows the
    # insert waits for the merge, so then it runs (and the rate counts that wait).
    hold = len(later) <= store.staging_max_rows
    with psycopg.connect(store.pool.conninfo, autocommit=True) as holder:
        if hold:
            holder.execute("SELECT pg_advisory_lock(hashtext(%s))", (tables.lock_key,))
        seconds = await fill(store, later, first=len(vectors) + len(more))
        label = "staged (the insert is a COPY)" if hold else f"staged, past staging_max_rows {store.staging_max_rows}"
        rows.append(Row(f"pgvector hnsw: more rows, {label}", len(more), seconds, *[None] * 6))
        staged_p50, staged_p99, staged_recall, staged_cpu = await search_timings(store, queries, exact, server)
    label = f"pgvector hnsw: {len(more):,} rows staged, merge held" if hold else "pgvector hnsw: just after the insert"
    rows.append(Row(label, len(everything), None, staged_p50, staged_p99, staged_recall, staged_cpu, None, None))
    started, merged_before = time.perf_counter(), store.merger.merged
    store.merger.wake(BANK)
    p50, p99, recall, cpu = await search_timings(store, queries, exact, server)
    rows.append(
        Row("pgvector hnsw: searched during the merge", len(everything), None, p50, p99, recall, cpu, *[None] * 2)
    )
    await store.merger.idle(BANK)
    merge_s = time.perf_counter() - started
    print(f"  merge: {store.merger.merged - merged_before:,} staged rows into the graph in {merge_s:.1f} s "
          f"({(store.merger.merged - merged_before) / merge_s:.1f} rows/s, in the background)")  # fmt: skip
    p50, p99, recall, cpu = await search_timings(store, queries, exact, server)
    rows.append(Row("pgvector hnsw: after the merge", len(everything), None, p50, p99, recall, cpu, None, None))
    return rows
