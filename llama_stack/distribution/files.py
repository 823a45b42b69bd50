"""The Files API on the stack's metadata kvstore, so that every replica sharing that database
(sqlite file, Redis or Postgres) sees every file.

Layout: `files:meta:<id>` holds the record; `files:data:<id>:<n>` the content in base64 parts
of at most PART_BYTES, because Redis and Postgres handle many moderate values better than one
huge one. Content is written before the record and deleted after it, so a crash leaves at worst
unreferenced parts, never a record without its content. Ids start with the creation time, so
the store's key order is creation order and a listing needs no sort.
"""

from __future__ import annotations

import base64
import secrets
import time

from llama_stack.apis.files import (
    DeletedFile,
    FileList,
    FileNotFound,
    ListFilesRequest,
    NewFile,
    OpenAIFile,
    StoredFile,
)
from llama_stack.distribution.ownership import may_see, owner_of_new_resource
from llama_stack.distribution.pages import cursor_page
from llama_stack.distribution.store.api import KVStore, values_with_prefix

META = "files:meta:"
DATA = "files:data:"
PART_BYTES = 768 * 1024  # 1 MiB once in base64


def new_file_id() -> str:
    return f"file-{time.time_ns():016x}{secrets.token_hex(8)}"


class KVFiles:
    """Implements the Files protocol on a KVStore."""

    def __init__(self, store: KVStore) -> None:
        self.store = store

    async def create_file(self, new: NewFile, content: bytes) -> OpenAIFile:
        file_id = new_file_id()
        created_at = int(time.time())
        expires_at = created_at + new.expires_after_s if new.expires_after_s else None
        for index, start in enumerate(range(0, len(content), PART_BYTES)):
            part = base64.b64encode(content[start : start + PART_BYTES]).decode()
            await self.store.set(f"{DATA}{file_id}:{index:06d}", part)
        record = StoredFile(
            id=file_id,
            bytes=len(content),
            created_at=created_at,
            filename=new.filename,
            purpose=new.purpose,
            expires_at=expires_at,
            owner=owner_of_new_resource(),
        )
        await self.store.set(META + file_id, record.model_dump_json())
        return record.public()

    async def _record(self, file_id: str) -> StoredFile:
        raw = await self.store.get(META + file_id) if file_id.startswith("file-") else None
        if raw is None:
            raise FileNotFound(file_id)
        record = StoredFile.model_validate_json(raw)
        if not may_see(record.owner):
            raise FileNotFound(file_id)
        if _expired(record):
            await self._remove(file_id)
            raise FileNotFound(file_id)
        return record

    async def get_file(self, file_id: str) -> OpenAIFile:
        return (await self._record(file_id)).public()

    async def file_content(self, file_id: str) -> bytes:
        await self._record(file_id)
        parts = await values_with_prefix(self.store, f"{DATA}{file_id}:")
        return b"".join(base64.b64decode(part) for part in parts)

    async def delete_file(self, file_id: str) -> DeletedFile:
        await self._record(file_id)
        await self._remove(file_id)
        return DeletedFile(id=file_id)

    async def _remove(self, file_id: str) -> None:
        await self.store.delete(META + file_id)
        for key in await self.store.keys_with_prefix(f"{DATA}{file_id}:"):
            await self.store.delete(key)

    async def list_files(self, request: ListFilesRequest) -> FileList:
        records = [StoredFile.model_validate_json(raw) for raw in await values_with_prefix(self.store, META)]
        shown: list[OpenAIFile] = []
        for record in records if request.order == "asc" else reversed(records):
            if _expired(record):
                await self._remove(record.id)
                continue
            if request.purpose is not None and record.purpose != request.purpose:
                continue
            if not may_see(record.owner):
                continue
            shown.append(record.public())
        page, has_more = cursor_page(shown, lambda item: item.id, request.limit, after=request.after)
        return FileList(
            data=page,
            has_more=has_more,
            first_id=page[0].id if page else None,
            last_id=page[-1].id if page else None,
        )


def _expired(record: StoredFile) -> bool:
    return record.expires_at is not None and record.expires_at <= time.time()
