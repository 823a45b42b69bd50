"""Responses items: ids, what the server outputs, and the conversion of a context (a list of
items) into the chat request the inference router runs.

Items go to the model through OpenAI's chat-completions shape and the /v1 face's one mapping
(`to_chat_request`), so a response prompts a model exactly as a chat completion would. The
results of server-side tools (file_search, web_search, mcp) are kept beside the items
(`tool_outputs`, by item id): the items a client sees stay OpenAI's, and a chained response
still shows the model what those tools returned.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from llama_stack.apis.errors import InvalidRequest
from llama_stack.apis.responses import (
    FunctionCallItem,
    FunctionCallOutputItem,
    InputImage,
    InputItem,
    InputText,
    McpApprovalRequestItem,
    McpApprovalResponseItem,
    MessageItem,
    Refusal,
    ToolCallRecordItem,
)
from llama_stack.server import openai_types as oai

Item = dict[str, Any]

ID_PREFIX = {
    "message": "msg_",
    "function_call": "fc_",
    "function_call_output": "fco_",
    "file_search_call": "fs_",
    "web_search_call": "ws_",
    "mcp_call": "mcp_",
    "mcp_list_tools": "mcpl_",
    "mcp_approval_request": "mcpr_",
    "mcp_approval_response": "mcpa_",
}


def new_id(prefix: str) -> str:
    """Ids that sort in creation order and cannot be guessed."""
    return f"{prefix}{time.time_ns():016x}{secrets.token_hex(8)}"


def with_id(item: Item) -> Item:
    return item if item.get("id") else {**item, "id": new_id(ID_PREFIX.get(item["type"], "item_"))}


def input_items(raw: str | list[InputItem]) -> list[Item]:
    """The request's input as stored items, each with an id."""
    if isinstance(raw, str):
        return [with_id({"type": "message", "role": "user", "content": [{"type": "input_text", "text": raw}]})]
    return [with_id(item.model_dump(exclude_none=True, by_alias=True)) for item in raw]


def output_message(item_id: str, text: str, refusal: bool, status: str = "completed") -> Item:
    part = {"type": "refusal", "refusal": text} if refusal else {"type": "output_text", "text": text, "annotations": []}
    return {"type": "message", "id": item_id, "role": "assistant", "status": status, "content": [part]}


# --- items -> chat messages -------------------------------------------------------------------


def _parts(content: str | list[Any]) -> str | list[oai.ContentPart]:
    if isinstance(content, str):
        return content
    parts: list[oai.ContentPart] = []
    for part in content:
        if isinstance(part, InputText):
            parts.append(oai.ContentPart(type="text", text=part.text))
        elif isinstance(part, Refusal):
            parts.append(oai.ContentPart(type="text", text=part.refusal))
        elif isinstance(part, InputImage):
            if part.image_url is None:
                raise InvalidRequest("input: an input_image needs image_url (file_id images are not supported yet)")
            parts.append(oai.ContentPart(type="image_url", image_url=oai.ImageURL(url=part.image_url)))
    return parts


def _tool_turn(call_id: str, name: str, arguments: str, output: str) -> list[oai.ChatMessage]:
    call = oai.ToolCallSpec(id=call_id, function=oai.FunctionCall(name=name, arguments=arguments))
    return [
        oai.ChatMessage(role="assistant", content=None, tool_calls=[call]),
        oai.ChatMessage(role="tool", tool_call_id=call_id, content=output),
    ]


_ITEM_TYPES: dict[str, type[Any]] = {
    "message": MessageItem,
    "function_call": FunctionCallItem,
    "function_call_output": FunctionCallOutputItem,
    "mcp_approval_request": McpApprovalRequestItem,
    "mcp_approval_response": McpApprovalResponseItem,
}


def chat_messages(instructions: str | None, context: list[Item], tool_outputs: dict[str, str]) -> list[oai.ChatMessage]:
    messages: list[oai.ChatMessage] = []
    if instructions:
        messages.append(oai.ChatMessage(role="system", content=instructions))
    pending_calls: list[oai.ToolCallSpec] = []
    for raw in context:
        kind = raw["type"]
        model = _ITEM_TYPES.get(kind)
        item = model.model_validate(raw) if model else ToolCallRecordItem.model_validate(raw)
        if isinstance(item, FunctionCallItem):
            call = oai.FunctionCall(name=item.name, arguments=item.arguments)
            pending_calls.append(oai.ToolCallSpec(id=item.call_id, function=call))
            continue
        if pending_calls:  # consecutive function calls are one assistant turn with several calls
            messages.append(oai.ChatMessage(role="assistant", content=None, tool_calls=pending_calls))
            pending_calls = []
        if isinstance(item, MessageItem):
            messages.append(oai.ChatMessage(role=item.role, content=_parts(item.content)))
        elif isinstance(item, FunctionCallOutputItem):
            messages.append(oai.ChatMessage(role="tool", tool_call_id=item.call_id, content=item.output))
        elif isinstance(item, ToolCallRecordItem) and item.id in tool_outputs:
            name = str(raw.get("name") or kind.removesuffix("_call"))
            arguments = str(raw.get("arguments") or json.dumps({"query": " ".join(raw.get("queries") or [])}))
            messages.extend(_tool_turn(item.id, name, arguments, tool_outputs[item.id]))
    if pending_calls:
        messages.append(oai.ChatMessage(role="assistant", content=None, tool_calls=pending_calls))
    return messages
