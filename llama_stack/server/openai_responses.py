"""The /v1/responses and /v1/conversations routes (the loop itself: llama_stack/server/responses/)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from llama_stack.apis.responses import (
    AddItemsRequest,
    CreateConversationRequest,
    CreateResponseRequest,
    ListResponsesRequest,
    UpdateConversationRequest,
)
from llama_stack.apis.safety import Guardrails
from llama_stack.server.params import JsonBodyRoute, json_response, query_params
from llama_stack.server.responses.service import Conversations, Responses
from llama_stack.server.responses.turn import ChatStream
from llama_stack.server.sse import sse_response

ChatFor = Callable[[Guardrails | None], Awaitable[ChatStream]]


def _event_frame(event: dict[str, Any]) -> bytes:
    return f"event: {event['type']}\ndata: ".encode() + json.dumps(event, separators=(",", ":")).encode() + b"\n\n"


def _error_frame(error: BaseException) -> bytes:
    message = getattr(error, "message", None) or "internal server error"
    body = {"type": "error", "code": "server_error", "message": message, "param": None, "sequence_number": -1}
    return _event_frame(body)


def responses_router(responses: Responses, chat_for: ChatFor) -> APIRouter:
    router = APIRouter(prefix="/v1", route_class=JsonBodyRoute)

    @router.post("/responses")
    async def create_response(body: CreateResponseRequest) -> Response:
        # Shields asked for with extra_body={"guardrails": ...} check the input and the streamed
        # output, as on chat completions; a blocked answer is a `refusal` content part.
        chat = await chat_for(body.guardrails)
        turn = await responses.start(body, chat)
        if body.stream:
            return await sse_response(responses.run(turn), frame=_event_frame, error_frame=_error_frame)
        return json_response(await responses.create(turn))

    @router.get("/responses")
    async def list_responses(http: Request) -> Response:
        return json_response(await responses.list(query_params(http, ListResponsesRequest)))

    @router.get("/responses/{response_id}")
    async def get_response(response_id: str) -> Response:
        return json_response(await responses.get(response_id))

    @router.delete("/responses/{response_id}")
    async def delete_response(response_id: str) -> Response:
        return json_response(await responses.delete(response_id))

    @router.get("/responses/{response_id}/input_items")
    async def input_items(response_id: str, http: Request) -> Response:
        return json_response(await responses.input_items(response_id, query_params(http, ListResponsesRequest)))

    @router.post("/responses/{response_id}/cancel")
    async def cancel_response(response_id: str) -> Response:
        return json_response(await responses.cancel(response_id))

    return router


def conversations_router(conversations: Conversations) -> APIRouter:
    router = APIRouter(prefix="/v1/conversations", route_class=JsonBodyRoute)

    @router.post("")
    async def create(body: CreateConversationRequest) -> Response:
        return json_response(await conversations.create(body))

    @router.get("/{conversation_id}")
    async def get(conversation_id: str) -> Response:
        return json_response(await conversations.get(conversation_id))

    @router.post("/{conversation_id}")
    async def update(conversation_id: str, body: UpdateConversationRequest) -> Response:
        return json_response(await conversations.update(conversation_id, body.metadata))

    @router.delete("/{conversation_id}")
    async def delete(conversation_id: str) -> Response:
        return json_response(await conversations.delete(conversation_id))

    @router.post("/{conversation_id}/items")
    async def add_items(conversation_id: str, body: AddItemsRequest) -> Response:
        return json_response(await conversations.add_items(conversation_id, body))

    @router.get("/{conversation_id}/items")
    async def list_items(conversation_id: str, http: Request) -> Response:
        return json_response(await conversations.list_items(conversation_id, query_params(http, ListResponsesRequest)))

    @router.get("/{conversation_id}/items/{item_id}")
    async def get_item(conversation_id: str, item_id: str) -> Response:
        return json_response(await conversations.get_item(conversation_id, item_id))

    @router.delete("/{conversation_id}/items/{item_id}")
    async def delete_item(conversation_id: str, item_id: str) -> Response:
        return json_response(await conversations.delete_item(conversation_id, item_id))

    return router
