"""Vector stores as a view of vector memory banks.

A vector store `vs_…` is a vector bank of the same id, registered through the memory-banks
registry (so it is routed to a memory provider, owned by its creator and visible to the
/alpha face as a bank). Attaching a file inserts it into the bank as the document whose id is
the file id, its attributes as the document's metadata; searching is a bank query. What OpenAI's
objects add (names, metadata, file status and counts, batches, expiry) lives in the metadata
kvstore, so every replica serves the same stores.

Ingestion happens within the attach request: a file answers `completed`, or `failed` with a
`last_error` saying why it could not be read — a bad file never fails the request.
"""

from __future__ import annotations

import base64
import mimetypes
import secrets
import time
from typing import Any

from llama_stack.apis.common import URL, content_text
from llama_stack.apis.errors import InvalidRequest, PayloadTooLarge, StackError
from llama_stack.apis.files import Files
from llama_stack.apis.memory import (
    DeleteDocumentsRequest,
    InsertDocumentsRequest,
    Memory,
    MemoryBankDocument,
    QueryDocumentsRequest,
)
from llama_stack.apis.memory_banks import MemoryBanks, RegisterMemoryBankRequest, VectorMemoryBankParams
from llama_stack.apis.models import Models, ModelType
from llama_stack.apis.vector_stores import (
    AttachFileRequest,
    CreateFileBatchRequest,
    CreateVectorStoreRequest,
    FileBatchNotFound,
    FileCounts,
    LastError,
    ListFilesRequest,
    ListRequest,
    Page,
    SearchContent,
    SearchPage,
    SearchRequest,
    SearchResult,
    StaticChunkingStrategy,
    UpdateFileRequest,
    UpdateVectorStoreRequest,
    VectorStore,
    VectorStoreFile,
    VectorStoreFileBatch,
    VectorStoreFileNotFound,
    VectorStoreNotFound,
    static_of,
)
from llama_stack.distribution.filters import equalities_of, matches_filter
from llama_stack.distribution.ownership import may_see, owner_of_new_resource
from llama_stack.distribution.pages import cursor_page
from llama_stack.distribution.store.api import KVStore, values_with_prefix

DAY_S = 24 * 3600
TOUCH_EVERY_S = 60
# With a filter the bank cannot apply itself, this many candidates are fetched and then filtered.
FILTER_CANDIDATES = 200


class StoredVectorStore(VectorStore):
    owner: str | None = None
    chunking: StaticChunkingStrategy

    def public(self) -> VectorStore:
        return VectorStore.model_validate(self.model_dump(exclude={"owner", "chunking"}))


class StoredBatch(VectorStoreFileBatch):
    file_ids: list[str]

    def public(self) -> VectorStoreFileBatch:
        return VectorStoreFileBatch.model_validate(self.model_dump(exclude={"file_ids"}))


class StoredFile(VectorStoreFile):
    filename: str = ""

    def public(self) -> VectorStoreFile:
        return VectorStoreFile.model_validate(self.model_dump(exclude={"filename"}))


def _ordered_id(prefix: str) -> str:
    """Ids that sort in creation order, so the store's key order is a listing's order."""
    return f"{prefix}{time.time_ns():016x}{secrets.token_hex(6)}"


def _last_error(error: StackError) -> LastError:
    """Why a file could not be ingested, in OpenAI's codes: the bank's parser names the format it
    cannot read ("unsupported mime_type"), every other refusal of the content is an invalid file."""
    if isinstance(error, InvalidRequest | PayloadTooLarge):
        unsupported = "unsupported mime_type" in error.message
        return LastError(code="unsupported_file" if unsupported else "invalid_file", message=error.message)
    return LastError(code="server_error", message=error.message)


class BankVectorStores:
    """Implements the VectorStores protocol over the memory banks registry, the Memory router,
    the Files API and the metadata kvstore."""

    def __init__(self, store: KVStore, banks: MemoryBanks, memory: Memory, files: Files, models: Models) -> None:
        self.store = store
        self.banks = banks
        self.memory = memory
        self.files = files
        self.models = models

    # --- stores ---------------------------------------------------------------------------------

    async def create(self, request: CreateVectorStoreRequest) -> VectorStore:
        embedding_model = request.embedding_model or await self._default_embedding_model()
        chunking = static_of(request.chunking_strategy)
        vector_store_id = _ordered_id("vs_")
        await self.banks.register_memory_bank(
            RegisterMemoryBankRequest(
                memory_bank_id=vector_store_id,
                provider_id=request.provider_id,
                params=VectorMemoryBankParams(
                    embedding_model=embedding_model,
                    chunk_size_in_tokens=chunking.static.max_chunk_size_tokens,
                    overlap_size_in_tokens=chunking.static.chunk_overlap_tokens,
                ),
            )
        )
        now = int(time.time())
        record = StoredVectorStore(
            id=vector_store_id,
            created_at=now,
            last_active_at=now,
            name=request.name,
            metadata=request.metadata,
            expires_after=request.expires_after,
            expires_at=now + request.expires_after.days * DAY_S if request.expires_after else None,
            owner=owner_of_new_resource(),
            chunking=chunking,
        )
        await self._save(record)
        for file_id in request.file_ids:
            await self._ingest(record, AttachFileRequest(file_id=file_id))
        return await self._public(record)

    async def _default_embedding_model(self) -> str:
        for model in await self.models.list_models():
            if model.model_type == ModelType.embedding:
                return model.identifier
        raise InvalidRequest("embedding_model: this distribution registers no embedding model; register one first")

    async def _save(self, record: StoredVectorStore) -> None:
        await self.store.set(f"vs:meta:{record.id}", record.model_dump_json())

    async def _record(self, vector_store_id: str) -> StoredVectorStore:
        raw = await self.store.get(f"vs:meta:{vector_store_id}")
        if raw is None:
            raise VectorStoreNotFound(vector_store_id)
        record = StoredVectorStore.model_validate_json(raw)
        if not may_see(record.owner):
            raise VectorStoreNotFound(vector_store_id)
        return record

    async def _files_of(self, vector_store_id: str) -> list[StoredFile]:
        values = await values_with_prefix(self.store, f"vs:file:{vector_store_id}:")
        return [StoredFile.model_validate_json(raw) for raw in values]

    async def _public(self, record: StoredVectorStore) -> VectorStore:
        files = await self._files_of(record.id)
        counts = _counts(files)
        expired = record.expires_at is not None and record.expires_at <= time.time()
        return record.public().model_copy(
            update={
                "file_counts": counts,
                "usage_bytes": sum(file.usage_bytes for file in files if file.status == "completed"),
                "status": "expired" if expired else "in_progress" if counts.in_progress else "completed",
            }
        )

    async def list_stores(self, request: ListRequest) -> Page:
        values = await values_with_prefix(self.store, "vs:meta:")
        records = [StoredVectorStore.model_validate_json(raw) for raw in values]
        visible = [r for r in (records if request.order == "asc" else reversed(records)) if may_see(r.owner)]
        page, has_more = cursor_page(visible, lambda r: r.id, request.limit, request.after, request.before)
        data = [await self._public(record) for record in page]
        return Page(data=data, first_id=_first_id(data), last_id=_last_id(data), has_more=has_more)

    async def get(self, vector_store_id: str) -> VectorStore:
        return await self._public(await self._record(vector_store_id))

    async def update(self, vector_store_id: str, request: UpdateVectorStoreRequest) -> VectorStore:
        record = await self._record(vector_store_id)
        changes: dict[str, Any] = {"last_active_at": int(time.time())}
        if request.name is not None:
            changes["name"] = request.name
        if request.metadata is not None:
            changes["metadata"] = request.metadata
        if request.expires_after is not None:
            changes["expires_after"] = request.expires_after
            changes["expires_at"] = changes["last_active_at"] + request.expires_after.days * DAY_S
        record = record.model_copy(update=changes)
        await self._save(record)
        return await self._public(record)

    async def delete(self, vector_store_id: str) -> dict[str, Any]:
        await self._record(vector_store_id)
        await self.banks.unregister_memory_bank(vector_store_id)
        for key in await self.store.keys_with_prefix(f"vs:file:{vector_store_id}:"):
            await self.store.delete(key)
        for key in await self.store.keys_with_prefix(f"vs:batch:{vector_store_id}:"):
            await self.store.delete(key)
        await self.store.delete(f"vs:meta:{vector_store_id}")
        return {"id": vector_store_id, "object": "vector_store.deleted", "deleted": True}

    # --- search ---------------------------------------------------------------------------------

    async def search(self, vector_store_id: str, request: SearchRequest) -> SearchPage:
        record = await self._record(vector_store_id)
        if record.expires_at is not None and record.expires_at <= time.time():
            raise InvalidRequest(f"vector store '{vector_store_id}' has expired")
        queries = [request.query] if isinstance(request.query, str) else request.query
        if not any(q.strip() for q in queries):
            raise InvalidRequest("query: must not be empty")
        equalities = equalities_of(request.filters)
        wanted = request.max_num_results if equalities is not None else FILTER_CANDIDATES
        params: dict[str, Any] = {"max_chunks": wanted, "mode": request.search_mode, "filters": equalities or {}}
        if request.ranking_options is not None and request.ranking_options.score_threshold is not None:
            params["score_threshold"] = request.ranking_options.score_threshold
        response = await self.memory.query_documents(
            QueryDocumentsRequest(bank_id=vector_store_id, query=" ".join(queries), params=params)
        )
        post_filter = request.filters if equalities is None else None  # what the bank could not apply
        filenames: dict[str, str] = {}
        results: list[SearchResult] = []
        for chunk, score in zip(response.chunks, response.scores, strict=True):
            if post_filter is not None and not matches_filter(chunk.metadata, post_filter):
                continue
            if chunk.document_id not in filenames:  # only the files found are read, not the store's every file
                filenames[chunk.document_id] = await self._filename(vector_store_id, chunk.document_id)
            results.append(
                SearchResult(
                    file_id=chunk.document_id,
                    filename=filenames.get(chunk.document_id, ""),
                    score=score,
                    attributes=chunk.metadata,
                    content=[SearchContent(text=content_text(chunk.content))],
                )
            )
        await self._touch(record)
        return SearchPage(search_query=queries, data=results[: request.max_num_results])

    async def _filename(self, vector_store_id: str, file_id: str) -> str:
        raw = await self.store.get(f"vs:file:{vector_store_id}:{file_id}")
        return StoredFile.model_validate_json(raw).filename if raw is not None else ""

    async def _touch(self, record: StoredVectorStore) -> None:
        now = int(time.time())
        if record.last_active_at is not None and now - record.last_active_at < TOUCH_EVERY_S:
            return  # activity is kept to the minute: a search does not pay a write each time
        changes: dict[str, Any] = {"last_active_at": now}
        if record.expires_after is not None:
            changes["expires_at"] = now + record.expires_after.days * DAY_S
        await self._save(record.model_copy(update=changes))

    # --- files ----------------------------------------------------------------------------------

    async def _ingest(self, record: StoredVectorStore, request: AttachFileRequest) -> StoredFile:
        if request.chunking_strategy is not None and static_of(request.chunking_strategy) != record.chunking:
            raise InvalidRequest(
                "chunking_strategy: a file is chunked as its vector store is; give the strategy when creating the store"
            )
        meta = await self.files.get_file(request.file_id)  # 404 for a file the caller cannot see
        attached = StoredFile(
            id=meta.id,
            created_at=int(time.time()),
            vector_store_id=record.id,
            status="completed",
            usage_bytes=meta.bytes,
            attributes=request.attributes,
            chunking_strategy=record.chunking,
            filename=meta.filename,
        )
        mime_type = mimetypes.guess_type(meta.filename)[0] or "text/plain"
        content = await self.files.file_content(meta.id)
        data_url = f"data:{mime_type};base64,{base64.b64encode(content).decode()}"
        document = MemoryBankDocument(
            document_id=meta.id, content=URL(uri=data_url), mime_type=mime_type, metadata=dict(request.attributes)
        )
        try:
            await self.memory.insert_documents(InsertDocumentsRequest(bank_id=record.id, documents=[document]))
        except StackError as e:
            attached = attached.model_copy(update={"status": "failed", "usage_bytes": 0, "last_error": _last_error(e)})
        await self.store.set(f"vs:file:{record.id}:{meta.id}", attached.model_dump_json())
        return attached

    async def _file(self, vector_store_id: str, file_id: str) -> StoredFile:
        raw = await self.store.get(f"vs:file:{vector_store_id}:{file_id}")
        if raw is None:
            raise VectorStoreFileNotFound(vector_store_id, file_id)
        return StoredFile.model_validate_json(raw)

    async def attach_file(self, vector_store_id: str, request: AttachFileRequest) -> VectorStoreFile:
        return (await self._ingest(await self._record(vector_store_id), request)).public()

    async def list_files(self, vector_store_id: str, request: ListFilesRequest) -> Page:
        await self._record(vector_store_id)
        return self._file_page(await self._files_of(vector_store_id), request)

    def _file_page(self, files: list[StoredFile], request: ListFilesRequest) -> Page:
        ordered = files if request.order == "asc" else files[::-1]
        wanted = [f for f in ordered if request.filter is None or f.status == request.filter]
        page, has_more = cursor_page(wanted, lambda f: f.id, request.limit, request.after, request.before)
        data = [file.public() for file in page]
        return Page(data=data, first_id=_first_id(data), last_id=_last_id(data), has_more=has_more)

    async def get_file(self, vector_store_id: str, file_id: str) -> VectorStoreFile:
        await self._record(vector_store_id)
        return (await self._file(vector_store_id, file_id)).public()

    async def update_file(self, vector_store_id: str, file_id: str, request: UpdateFileRequest) -> VectorStoreFile:
        record = await self._record(vector_store_id)
        attached = await self._file(vector_store_id, file_id)
        # The attributes are the chunks' metadata: re-ingest so that filters see the new ones.
        updated = await self._ingest(record, AttachFileRequest(file_id=file_id, attributes=request.attributes))
        return updated.public() if updated.status == "completed" else attached.public()

    async def detach_file(self, vector_store_id: str, file_id: str) -> dict[str, Any]:
        await self._record(vector_store_id)
        attached = await self._file(vector_store_id, file_id)
        if attached.status == "completed":
            await self.memory.delete_documents(DeleteDocumentsRequest(bank_id=vector_store_id, document_ids=[file_id]))
        await self.store.delete(f"vs:file:{vector_store_id}:{file_id}")
        return {"id": file_id, "object": "vector_store.file.deleted", "deleted": True}

    # --- batches --------------------------------------------------------------------------------

    async def create_file_batch(self, vector_store_id: str, request: CreateFileBatchRequest) -> VectorStoreFileBatch:
        record = await self._record(vector_store_id)
        attached = [
            await self._ingest(
                record,
                AttachFileRequest(
                    file_id=file_id, attributes=request.attributes, chunking_strategy=request.chunking_strategy
                ),
            )
            for file_id in dict.fromkeys(request.file_ids)
        ]
        batch = StoredBatch(
            id=_ordered_id("vsfb_"),
            created_at=int(time.time()),
            vector_store_id=vector_store_id,
            status="completed",
            file_counts=_counts(attached),
            file_ids=[file.id for file in attached],
        )
        await self.store.set(f"vs:batch:{vector_store_id}:{batch.id}", batch.model_dump_json())
        return batch.public()

    async def _batch(self, vector_store_id: str, batch_id: str) -> tuple[VectorStoreFileBatch, list[StoredFile]]:
        await self._record(vector_store_id)
        raw = await self.store.get(f"vs:batch:{vector_store_id}:{batch_id}")
        if raw is None:
            raise FileBatchNotFound(vector_store_id, batch_id)
        batch = StoredBatch.model_validate_json(raw)
        files = [file for file in await self._files_of(vector_store_id) if file.id in set(batch.file_ids)]
        return batch.public().model_copy(update={"file_counts": _counts(files)}), files

    async def get_file_batch(self, vector_store_id: str, batch_id: str) -> VectorStoreFileBatch:
        return (await self._batch(vector_store_id, batch_id))[0]

    async def list_batch_files(self, vector_store_id: str, batch_id: str, request: ListFilesRequest) -> Page:
        return self._file_page((await self._batch(vector_store_id, batch_id))[1], request)


def _counts(files: list[StoredFile]) -> FileCounts:
    counts = FileCounts(total=len(files))
    for file in files:
        setattr(counts, file.status, getattr(counts, file.status) + 1)
    return counts


def _first_id(data: list[Any]) -> str | None:
    return data[0].id if data else None


def _last_id(data: list[Any]) -> str | None:
    return data[-1].id if data else None
