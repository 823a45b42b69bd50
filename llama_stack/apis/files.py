"""Files API: blobs a caller uploads once and other APIs read (vector stores, responses), in
OpenAI's shape (`/v1/files`)."""

from __future__ import annotations

from typing import Literal, Protocol

from pydantic import Field

from llama_stack.apis.common import WireModel
from llama_stack.apis.errors import NotFound

FilePurpose = Literal["assistants", "batch", "fine-tune", "vision", "user_data", "evals"]
FILE_PURPOSES: tuple[str, ...] = FilePurpose.__args__  # type: ignore[attr-defined]

# OpenAI's bounds on `expires_after.seconds`: one hour to thirty days.
MIN_EXPIRY_S = 3600
MAX_EXPIRY_S = 30 * 24 * 3600


class FileNotFound(NotFound):
    def __init__(self, file_id: str) -> None:
        super().__init__(f"No such file: '{file_id}'.")


class OpenAIFile(WireModel):
    id: str
    object: Literal["file"] = "file"
    bytes: int
    created_at: int
    filename: str
    purpose: FilePurpose
    expires_at: int | None = None
    # Deprecated in OpenAI's API but still required by its SDK's FileObject.
    status: Literal["uploaded", "processed", "error"] = "processed"


class StoredFile(OpenAIFile):
    """A file's record in the store: what the API shows, plus who owns it (never shown)."""

    owner: str | None = None

    def public(self) -> OpenAIFile:
        return OpenAIFile.model_validate(self.model_dump(exclude={"owner"}))


class ListFilesRequest(WireModel):
    after: str | None = None
    limit: int = Field(default=10000, ge=1, le=10000)
    order: Literal["asc", "desc"] = "desc"
    purpose: FilePurpose | None = None


class FileList(WireModel):
    object: Literal["list"] = "list"
    data: list[OpenAIFile]
    has_more: bool
    first_id: str | None = None
    last_id: str | None = None


class DeletedFile(WireModel):
    id: str
    object: Literal["file"] = "file"
    deleted: bool = True


class NewFile(WireModel):
    filename: str = Field(min_length=1, max_length=1024)
    purpose: FilePurpose
    expires_after_s: int | None = Field(default=None, ge=MIN_EXPIRY_S, le=MAX_EXPIRY_S)


class Files(Protocol):
    async def create_file(self, new: NewFile, content: bytes) -> OpenAIFile: ...

    async def list_files(self, request: ListFilesRequest) -> FileList: ...

    async def get_file(self, file_id: str) -> OpenAIFile: ...

    async def file_content(self, file_id: str) -> bytes: ...

    async def delete_file(self, file_id: str) -> DeletedFile: ...
