"""The /v1/vector_stores routes over the VectorStores contract (llama_stack/distribution/vector_stores.py)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from llama_stack.apis.errors import NotImplementedYet
from llama_stack.apis.vector_stores import (
    AttachFileRequest,
    CreateFileBatchRequest,
    CreateVectorStoreRequest,
    ListFilesRequest,
    ListRequest,
    SearchRequest,
    UpdateFileRequest,
    UpdateVectorStoreRequest,
    VectorStores,
)
from llama_stack.server.params import JsonBodyRoute, json_response, query_params


def vector_stores_router(stores: VectorStores) -> APIRouter:
    router = APIRouter(prefix="/v1/vector_stores", route_class=JsonBodyRoute)

    @router.post("")
    async def create(body: CreateVectorStoreRequest) -> Response:
        return json_response(await stores.create(body))

    @router.get("")
    async def list_stores(http: Request) -> Response:
        return json_response(await stores.list_stores(query_params(http, ListRequest)))

    @router.get("/{vector_store_id}")
    async def get(vector_store_id: str) -> Response:
        return json_response(await stores.get(vector_store_id))

    @router.post("/{vector_store_id}")
    async def update(vector_store_id: str, body: UpdateVectorStoreRequest) -> Response:
        return json_response(await stores.update(vector_store_id, body))

    @router.delete("/{vector_store_id}")
    async def delete(vector_store_id: str) -> Response:
        return json_response(await stores.delete(vector_store_id))

    @router.post("/{vector_store_id}/search")
    async def search(vector_store_id: str, body: SearchRequest) -> Response:
        return json_response(await stores.search(vector_store_id, body))

    @router.post("/{vector_store_id}/files")
    async def attach_file(vector_store_id: str, body: AttachFileRequest) -> Response:
        return json_response(await stores.attach_file(vector_store_id, body))

    @router.get("/{vector_store_id}/files")
    async def list_files(vector_store_id: str, http: Request) -> Response:
        return json_response(await stores.list_files(vector_store_id, query_params(http, ListFilesRequest)))

    @router.get("/{vector_store_id}/files/{file_id}")
    async def get_file(vector_store_id: str, file_id: str) -> Response:
        return json_response(await stores.get_file(vector_store_id, file_id))

    @router.post("/{vector_store_id}/files/{file_id}")
    async def update_file(vector_store_id: str, file_id: str, body: UpdateFileRequest) -> Response:
        return json_response(await stores.update_file(vector_store_id, file_id, body))

    @router.delete("/{vector_store_id}/files/{file_id}")
    async def detach_file(vector_store_id: str, file_id: str) -> Response:
        return json_response(await stores.detach_file(vector_store_id, file_id))

    @router.get("/{vector_store_id}/files/{file_id}/content")
    async def file_content(vector_store_id: str, file_id: str) -> Response:
        await stores.get_file(vector_store_id, file_id)
        raise NotImplementedYet(
            "a vector store file's parsed content is not served yet; read the original with GET /v1/files/{id}/content"
        )

    @router.post("/{vector_store_id}/file_batches")
    async def create_file_batch(vector_store_id: str, body: CreateFileBatchRequest) -> Response:
        return json_response(await stores.create_file_batch(vector_store_id, body))

    @router.get("/{vector_store_id}/file_batches/{batch_id}")
    async def get_file_batch(vector_store_id: str, batch_id: str) -> Response:
        return json_response(await stores.get_file_batch(vector_store_id, batch_id))

    @router.post("/{vector_store_id}/file_batches/{batch_id}/cancel")
    async def cancel_file_batch(vector_store_id: str, batch_id: str) -> Response:
        # Batches are ingested within their create request, so by now there is nothing to cancel.
        return json_response(await stores.get_file_batch(vector_store_id, batch_id))

    @router.get("/{vector_store_id}/file_batches/{batch_id}/files")
    async def list_batch_files(vector_store_id: str, batch_id: str, http: Request) -> Response:
        return json_response(
            await stores.list_batch_files(vector_store_id, batch_id, query_params(http, ListFilesRequest))
        )

    return router
