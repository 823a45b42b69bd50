"""Responses and Conversations: what the /v1 routes call.

A response is created from its chain (the previous response's context, or a conversation's
items), run as a Turn, and stored as it starts and when it ends, so that another replica can
read it, continue it, or cancel it while it runs. A response in a conversation appends its input
and output items to it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from llama_stack.apis.errors import InvalidRequest
from llama_stack.apis.models import Models, ModelType
from llama_stack.apis.responses import (
    AddItemsRequest,
    CreateConversationRequest,
    CreateResponseRequest,
    FileSearchTool,
    ListResponsesRequest,
)
from llama_stack.apis.vector_stores import VectorStores
from llama_stack.distribution.outbound import OutboundPolicy
from llama_stack.distribution.ownership import owner_of_new_resource
from llama_stack.distribution.store.api import KVStore

from .items import Item, input_items
from .message import Event
from .store import ResponseStore, page_of
from .turn import Chain, ChatStream, Turn, TurnServices

FINAL = ("response.completed", "response.incomplete", "response.failed")


class Responses:
    def __init__(
        self,
        kv: KVStore,
        models: Models,
        stores: VectorStores | None,
        outbound: OutboundPolicy,
        web_timeout_s: float = 15.0,
    ) -> None:
        self.store = ResponseStore(kv)
        self.models = models
        self.stores = stores
        self.outbound = outbound
        self.web_timeout_s = web_timeout_s

    async def start(self, request: CreateResponseRequest, chat: ChatStream) -> Turn:
        """Everything that can be refused before the response begins: a 4xx, not a failed stream."""
        model = await self.models.get_model(request.model)
        if model is None or model.model_type != ModelType.llm:
            raise InvalidRequest(f"model: '{request.model}' is not a registered LLM")
        if request.previous_response_id and request.conversation_id:
            raise InvalidRequest("previous_response_id and conversation cannot be used together")
        chain = Chain()
        if request.previous_response_id:
            previous = await self.store.response(request.previous_response_id)
            chain = Chain(previous.context, previous.tool_outputs)
        elif request.conversation_id:
            await self.store.conversation(request.conversation_id)
            chain = Chain(await self.store.items(request.conversation_id))
        for tool in request.tools:
            if isinstance(tool, FileSearchTool):
                if self.stores is None:
                    raise InvalidRequest(
                        "tools: file_search needs the memory API, which this distribution does not serve"
                    )
                for vector_store_id in tool.vector_store_ids:
                    await self.stores.get(vector_store_id)
        services = TurnServices(chat, self.stores, self.outbound, self.store, self.web_timeout_s)
        return Turn(services, request, chain, input_items(request.input))

    async def run(self, turn: Turn) -> AsyncIterator[Event]:
        """The turn's events, with the response stored as it starts and as it ends."""
        request, owner = turn.request, owner_of_new_resource()
        async for event in turn.events():
            if event["type"] == "response.created" and request.store:
                await self._save(turn, event["response"], owner)
            if event["type"] in FINAL:
                await self._finish(turn, event["response"], owner)
            yield event

    async def _save(self, turn: Turn, response: Event, owner: str | None) -> None:
        record = turn.record(response).model_copy(update={"owner": owner})
        await self.store.save_response(record)

    async def _finish(self, turn: Turn, response: Event, owner: str | None) -> None:
        if turn.request.store:
            await self._save(turn, response, owner)
        conversation = turn.request.conversation_id
        if conversation and response["status"] in ("completed", "incomplete"):
            await self.store.add_items(conversation, [*turn.input_items, *response["output"]])

    async def create(self, turn: Turn) -> Event:
        final: Event = {}
        async for event in self.run(turn):
            if event["type"] in FINAL:
                final = event["response"]
        return final

    async def get(self, response_id: str) -> Event:
        return (await self.store.response(response_id)).response

    async def delete(self, response_id: str) -> Event:
        await self.store.delete_response(response_id)
        return {"id": response_id, "object": "response", "deleted": True}

    async def list(self, request: ListResponsesRequest) -> Event:
        return await self.store.list_responses(request.limit, request.order, request.after, request.before)

    async def input_items(self, response_id: str, request: ListResponsesRequest) -> Event:
        items = (await self.store.response(response_id)).input_items
        return page_of(items, request.limit, request.order, request.after, request.before)

    async def cancel(self, response_id: str) -> Event:
        record = await self.store.response(response_id)
        if record.response["status"] != "in_progress":
            raise InvalidRequest(
                f"response '{response_id}' is {record.response['status']}; only a response in progress can be cancelled"
            )
        await self.store.request_cancel(response_id)
        return {**record.response, "status": "cancelled"}


class Conversations:
    def __init__(self, store: ResponseStore) -> None:
        self.store = store

    async def create(self, request: CreateConversationRequest) -> Event:
        items = input_items(request.items) if request.items else []
        return (await self.store.create_conversation(request.metadata, items)).public()

    async def get(self, conversation_id: str) -> Event:
        return (await self.store.conversation(conversation_id)).public()

    async def update(self, conversation_id: str, metadata: dict[str, str]) -> Event:
        return (await self.store.update_conversation(conversation_id, metadata)).public()

    async def delete(self, conversation_id: str) -> Event:
        await self.store.delete_conversation(conversation_id)
        return {"id": conversation_id, "object": "conversation.deleted", "deleted": True}

    async def add_items(self, conversation_id: str, request: AddItemsRequest) -> Event:
        await self.store.conversation(conversation_id)
        added = await self.store.add_items(conversation_id, input_items(request.items))
        return page_of(added, len(added), "asc", None, None)

    async def list_items(self, conversation_id: str, request: ListResponsesRequest) -> Event:
        await self.store.conversation(conversation_id)
        items = await self.store.items(conversation_id)
        return page_of(items, request.limit, request.order, request.after, request.before)

    async def get_item(self, conversation_id: str, item_id: str) -> Item:
        await self.store.conversation(conversation_id)
        return await self.store.item(conversation_id, item_id)

    async def delete_item(self, conversation_id: str, item_id: str) -> Event:
        conversation = await self.store.conversation(conversation_id)
        await self.store.delete_item(conversation_id, item_id)
        return conversation.public()
