"""Stored responses and conversations, on the metadata kvstore so that every replica serves
them and a chain of responses survives restarts.

A stored response keeps what a client sees (the response object and its input items) and what
a chained response needs (`context`: every item of the chain so far, and the results of its
server-side tools). Conversations are a header and an ordered list of items; item keys start
with a time-ordered id, so the store's key order is the conversation's order.
"""

from __future__ import annotations

import json
import time
from typing import Any

from pydantic import BaseModel, Field

from llama_stack.apis.responses import ConversationItemNotFound, ConversationNotFound, ResponseNotFound
from llama_stack.distribution.ownership import may_see, owner_of_new_resource
from llama_stack.distribution.pages import cursor_page
from llama_stack.distribution.store.api import KVStore, values_with_prefix

from .items import Item, new_id, with_id


class StoredResponse(BaseModel):
    response: dict[str, Any]
    input_items: list[Item]
    context: list[Item]
    tool_outputs: dict[str, str] = Field(default_factory=dict)
    owner: str | None = None


class StoredConversation(BaseModel):
    id: str
    created_at: int
    metadata: dict[str, str] = Field(default_factory=dict)
    owner: str | None = None

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "object": "conversation", "created_at": self.created_at, "metadata": self.metadata}


class ResponseStore:
    def __init__(self, store: KVStore) -> None:
        self.store = store

    # --- responses ------------------------------------------------------------------------------

    async def save_response(self, record: StoredResponse) -> None:
        await self.store.set(f"resp:{record.response['id']}", record.model_dump_json())

    async def response(self, response_id: str) -> StoredResponse:
        raw = await self.store.get(f"resp:{response_id}") if response_id.startswith("resp_") else None
        if raw is None:
            raise ResponseNotFound(response_id)
        record = StoredResponse.model_validate_json(raw)
        if not may_see(record.owner):
            raise ResponseNotFound(response_id)
        return record

    async def delete_response(self, response_id: str) -> None:
        await self.response(response_id)
        await self.store.delete(f"resp:{response_id}")
        await self.store.delete(f"resp-cancel:{response_id}")

    async def list_responses(self, limit: int, order: str, after: str | None, before: str | None) -> dict[str, Any]:
        records = [StoredResponse.model_validate_json(raw) for raw in await values_with_prefix(self.store, "resp:")]
        visible = [r.response for r in (records if order == "asc" else reversed(records)) if may_see(r.owner)]
        page, has_more = cursor_page(visible, lambda r: str(r["id"]), limit, after, before)
        return _list(page, has_more)

    async def request_cancel(self, response_id: str) -> None:
        await self.store.set(f"resp-cancel:{response_id}", str(time.time()))

    async def cancel_requested(self, response_id: str) -> bool:
        return await self.store.get(f"resp-cancel:{response_id}") is not None

    # --- conversations --------------------------------------------------------------------------

    async def create_conversation(self, metadata: dict[str, str], items: list[Item]) -> StoredConversation:
        conversation = StoredConversation(
            id=new_id("conv_"), created_at=int(time.time()), metadata=metadata, owner=owner_of_new_resource()
        )
        await self.store.set(f"conv:{conversation.id}", conversation.model_dump_json())
        await self.add_items(conversation.id, items)
        return conversation

    async def conversation(self, conversation_id: str) -> StoredConversation:
        raw = await self.store.get(f"conv:{conversation_id}") if conversation_id.startswith("conv_") else None
        if raw is None:
            raise ConversationNotFound(conversation_id)
        conversation = StoredConversation.model_validate_json(raw)
        if not may_see(conversation.owner):
            raise ConversationNotFound(conversation_id)
        return conversation

    async def update_conversation(self, conversation_id: str, metadata: dict[str, str]) -> StoredConversation:
        conversation = (await self.conversation(conversation_id)).model_copy(update={"metadata": metadata})
        await self.store.set(f"conv:{conversation_id}", conversation.model_dump_json())
        return conversation

    async def delete_conversation(self, conversation_id: str) -> None:
        await self.conversation(conversation_id)
        for key in await self.store.keys_with_prefix(f"conv-item:{conversation_id}:"):
            await self.store.delete(key)
        await self.store.delete(f"conv:{conversation_id}")

    async def add_items(self, conversation_id: str, items: list[Item]) -> list[Item]:
        stored = []
        for item in items:
            # Keyed by a fresh ordered sequence: a client may add an item whose id it chose.
            item = with_id(item)
            await self.store.set(f"conv-item:{conversation_id}:{new_id('')}:{item['id']}", _dump(item))
            stored.append(item)
        return stored

    async def items(self, conversation_id: str) -> list[Item]:
        return [_load(raw) for raw in await values_with_prefix(self.store, f"conv-item:{conversation_id}:")]

    async def item(self, conversation_id: str, item_id: str) -> Item:
        for item in await self.items(conversation_id):
            if item["id"] == item_id:
                return item
        raise ConversationItemNotFound(conversation_id, item_id)

    async def delete_item(self, conversation_id: str, item_id: str) -> None:
        # The key ends with the item's id (see add_items); listing keys alone reads no value.
        keys = await self.store.keys_with_prefix(f"conv-item:{conversation_id}:")
        key = next((key for key in keys if key.endswith(f":{item_id}")), None)
        if key is None:
            raise ConversationItemNotFound(conversation_id, item_id)
        await self.store.delete(key)


def _list(data: list[Any], has_more: bool) -> dict[str, Any]:
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": has_more,
    }


def page_of(items: list[Item], limit: int, order: str, after: str | None, before: str | None) -> dict[str, Any]:
    ordered = items if order == "asc" else items[::-1]
    page, has_more = cursor_page(ordered, lambda item: str(item["id"]), limit, after, before)
    return _list(page, has_more)


def _dump(item: Item) -> str:
    return json.dumps(item, separators=(",", ":"))


def _load(raw: str) -> Item:
    loaded: Item = json.loads(raw)
    return loaded
