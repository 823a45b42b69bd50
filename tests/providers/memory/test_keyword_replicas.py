"""Keyword search on two memory providers that share one kvstore, as two replicas do: each keeps
its own BM25 indexes and answers as the other after any number of the other's writes, whether it
catches up from the change log or rebuilds after more writes than the log keeps. Real inline::faiss
providers and a real SQLite kvstore file shared by both; the embedder is the hashing stand-in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llama_stack.apis.memory import InsertDocumentsRequest, QueryDocumentsRequest
from llama_stack.apis.memory_banks import KeywordMemoryBank
from llama_stack.distribution.outbound import OutboundPolicy
from llama_stack.distribution.provider import Api, Deps
from llama_stack.distribution.store import kvstore_from_config
from llama_stack.distribution.store.api import SqliteKVStoreConfig
from llama_stack.providers.memory.common.bm25 import BM25Index
from llama_stack.providers.memory.common.keyword_indexes import KEEP_CHANGES, KeywordIndexes
from llama_stack.providers.memory.common.types import StoredChunk
from llama_stack.providers.memory.faiss import FaissMemoryConfig, get_provider_impl
from tests.providers.memory.hashing import HashingEmbedder

BANK = KeywordMemoryBank(identifier="notes", provider_resource_id="notes", provider_id="faiss")


async def replica(tmp_path: Path, name: str) -> Any:
    config = FaissMemoryConfig(
        persist_dir=str(tmp_path / name), kvstore={"type": "sqlite", "db_path": str(tmp_path / "shared-kv.db")}
    )
    kv = await kvstore_from_config(config.resolved_kvstore())
    deps = Deps({Api.inference: HashingEmbedder()}, outbound=OutboundPolicy(), kvstore=kv)
    engine = await get_provider_impl(config, deps)
    await engine.register_memory_bank(BANK)
    return engine


async def write(engine: Any, **documents: str) -> None:
    docs = [{"document_id": key, "content": text, "metadata": {}} for key, text in documents.items()]
    await engine.insert_documents(InsertDocumentsRequest.model_validate({"bank_id": "notes", "documents": docs}))


async def found(engine: Any, query: str) -> list[tuple[str, str, float]]:
    request = QueryDocumentsRequest.model_validate({"bank_id": "notes", "query": query, "params": {"max_chunks": 10}})
    response = await engine.query_documents(request)
    return [(c.document_id, str(c.content), round(s, 9)) for c, s in zip(response.chunks, response.scores, strict=True)]


async def test_each_replica_sees_the_others_writes_by_catching_up_or_rebuilding(tmp_path: Path) -> None:
    one, two = await replica(tmp_path, "one"), await replica(tmp_path, "two")
    try:
        await write(one, a="Paper lanterns float on the river.", b="Old maps in a quiet library.")
        assert await found(one, "lanterns river") == await found(two, "lanterns river")  # both built now

        await write(two, a="A zebra crossing by the station.")  # a replacement, logged
        assert [doc for doc, _, _ in await found(one, "lanterns")] == []
        assert await found(one, "zebra maps") == await found(two, "zebra maps")

        for i in range(KEEP_CHANGES + 5):  # more writes than the log keeps: `two` must rebuild
            await write(one, **{f"n{i % 7}": f"note {i} about lanterns and maps"})
        assert await found(two, "lanterns maps") == await found(one, "lanterns maps")
        assert await found(two, "zebra") == await found(one, "zebra")

        await write(one, b="Boats at the festival.")
        await write(two, c="Fireworks over the festival.")
        assert await found(one, "festival") == await found(two, "festival")
        assert {doc for doc, _, _ in await found(two, "festival")} == {"b", "c"}
    finally:
        await one.shutdown()
        await two.shutdown()


async def test_a_vector_banks_index_searched_before_the_counter_read_is_searched_again_when_stale(
    tmp_path: Path,
) -> None:
    """KeywordIndexes.search (every keyword and hybrid search, keyword banks too) searches the index it holds
    before reading the counter: that answer is used only when no write was counted since the
    index's generation; after another replica's write it catches up and searches again."""
    kv = await kvstore_from_config(SqliteKVStoreConfig(db_path=str(tmp_path / "shared-kv.db")))
    shared: dict[str, list[StoredChunk]] = {}  # the vector store both replicas read

    async def all_chunks() -> list[StoredChunk]:
        return [chunk for chunks in shared.values() for chunk in chunks]

    async def document_chunks(document_ids: list[str]) -> list[StoredChunk]:
        return [chunk for document_id in document_ids for chunk in shared.get(document_id, [])]

    async def write(replica: KeywordIndexes, document_id: str, text: str) -> None:
        shared[document_id] = [StoredChunk(document_id, 0, text, 1)]  # committed, then counted
        await replica.wrote("bank", [document_id], shared[document_id])

    searched: list[int] = []

    async def search(replica: KeywordIndexes, query: str) -> list[str]:
        def run(index: BM25Index) -> list[str]:
            searched.append(index.generation)
            return [scored.chunk.document_id for scored in index.search(query, 5, {})]

        found: list[str] = await replica.search("bank", all_chunks, document_chunks, run)
        return found

    one, two = KeywordIndexes(kv, "vector"), KeywordIndexes(kv, "vector")
    try:
        await write(one, "a", "paper lanterns on the river")
        assert await search(one, "lanterns") == ["a"] and searched == [1]  # built: searched once
        searched.clear()
        assert await search(one, "lanterns") == ["a"] and searched == [1]  # current: once
        searched.clear()

        await write(two, "b", "lanterns and lanterns at the festival")  # counted: one is stale
        assert await search(one, "lanterns") == ["b", "a"] and searched == [1, 2]  # again, caught up
        searched.clear()

        await write(one, "a", "a quiet library")  # one's own write: applied in place, no re-read
        assert await search(one, "lanterns") == ["b"] and searched == [3]
        assert await search(two, "library") == ["a"]  # two catches up from the log
    finally:
        await kv.close()
