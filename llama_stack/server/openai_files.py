"""The /v1/files routes: multipart upload, listing with OpenAI's cursor pagination, metadata,
content and deletion. The store is the stack's metadata kvstore (llama_stack/distribution/files.py),
so every replica sees every file. Uploads are bounded by the server's `max_request_bytes` (413)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.datastructures import UploadFile
from starlette.responses import Response

from llama_stack.apis.errors import InvalidRequest
from llama_stack.apis.files import Files, ListFilesRequest, NewFile
from llama_stack.server.params import JsonBodyRoute, json_response, query_params

# Text fields of the form (purpose, expires_after[...]) are short; a file part may be as large as
# the request body itself, which RequestBodyGuard already bounds.
MAX_TEXT_FIELD_BYTES = 64 * 1024


def _invalid(error: ValidationError, prefix: str = "") -> InvalidRequest:
    problem = error.errors()[0]
    where = ".".join(str(part) for part in problem["loc"]) or "body"
    return InvalidRequest(f"{prefix}{where}: {problem['msg']}")


async def _read_upload(http: Request) -> tuple[NewFile, bytes]:
    content_type = http.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise InvalidRequest("POST /v1/files takes multipart/form-data with the fields `file` and `purpose`")
    try:
        form = await http.form(max_files=1, max_fields=16, max_part_size=MAX_TEXT_FIELD_BYTES)
    except Exception as e:  # python-multipart's parse errors and starlette's limit errors alike
        raise InvalidRequest(f"the multipart body cannot be read: {e}") from e
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise InvalidRequest("file: a file part named `file` is required")
    fields: dict[str, Any] = {"filename": upload.filename or "upload", "purpose": form.get("purpose")}
    if fields["purpose"] is None:
        raise InvalidRequest("purpose: required")
    anchor, seconds = form.get("expires_after[anchor]"), form.get("expires_after[seconds]")
    if anchor is not None or seconds is not None:
        if anchor != "created_at":
            raise InvalidRequest("expires_after.anchor: must be 'created_at'")
        if not isinstance(seconds, str) or not seconds.strip().isdigit():
            raise InvalidRequest("expires_after.seconds: an integer number of seconds is required")
        fields["expires_after_s"] = int(seconds)
    try:
        new = NewFile.model_validate(fields)
    except ValidationError as e:
        raise _invalid(e) from e
    content = await upload.read()
    await upload.close()
    return new, content


def files_router(files: Files) -> APIRouter:
    router = APIRouter(prefix="/v1/files", route_class=JsonBodyRoute)

    @router.post("")
    async def create_file(http: Request) -> Response:
        new, content = await _read_upload(http)
        return json_response(await files.create_file(new, content))

    @router.get("")
    async def list_files(http: Request) -> Response:
        return json_response(await files.list_files(query_params(http, ListFilesRequest)))

    @router.get("/{file_id}")
    async def get_file(file_id: str) -> Response:
        return json_response(await files.get_file(file_id))

    @router.delete("/{file_id}")
    async def delete_file(file_id: str) -> Response:
        return json_response(await files.delete_file(file_id))

    @router.get("/{file_id}/content")
    async def file_content(file_id: str) -> Response:
        return Response(await files.file_content(file_id), media_type="application/octet-stream")

    return router
