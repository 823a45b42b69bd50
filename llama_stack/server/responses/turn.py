"""One response: the loop of model calls and server-side tools, told as OpenAI's stream events.

The loop: prompt the model with the context (the chain so far, the instructions, the input);
stream its text as a message item; for each tool call it makes, either hand it to the client
(function tools, MCP calls that need approval: the response ends there) or run it here
(file_search, web_search, approved MCP tools) and prompt the model again with the result. A
non-streamed response is the same loop with the events kept to the end.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any, Protocol

from llama_stack.apis.common import SafetyViolation
from llama_stack.apis.errors import Forbidden, InvalidRequest, NotFound, PayloadTooLarge, StackError
from llama_stack.apis.inference import (
    ChatCompletionEventType,
    ChatCompletionRequest,
    ChatCompletionResponseStreamChunk,
    ToolCallDelta,
    ToolCallParseStatus,
)
from llama_stack.apis.responses import (
    CreateResponseRequest,
    FileSearchTool,
    FunctionTool,
    McpApprovalResponseItem,
    McpTool,
)
from llama_stack.apis.vector_stores import VectorStores
from llama_stack.distribution.outbound import OutboundPolicy
from llama_stack.models.openai.requests import to_chat_request
from llama_stack.server import openai_types as oai

from .items import Item, chat_messages, new_id
from .message import Event, MessageBuilder, Sequence
from .store import ResponseStore, StoredResponse
from .tools import FileSearch, McpServer, ToolRun, WebSearch, function_spec, needs_approval

# A model that keeps calling server-side tools is stopped after this many rounds.
MAX_MODEL_CALLS = 10
CANCEL_POLL_S = 0.2


class ChatStream(Protocol):
    def chat_completion_stream(
        self, request: ChatCompletionRequest
    ) -> AsyncIterator[ChatCompletionResponseStreamChunk]: ...


@dataclass
class TurnServices:
    chat: ChatStream  # the inference router, with the request's guardrails around it
    stores: VectorStores | None
    outbound: OutboundPolicy
    store: ResponseStore
    web_timeout_s: float


@dataclass
class Chain:
    """What came before this response: earlier items and the results of their server tools."""

    context: list[Item] = field(default_factory=list)
    tool_outputs: dict[str, str] = field(default_factory=dict)


class Turn:
    def __init__(
        self, services: TurnServices, request: CreateResponseRequest, chain: Chain, input_items: list[Item]
    ) -> None:
        self.services = services
        self.request = request
        self.input_items = input_items
        self.context = [*chain.context, *input_items]
        self.tool_outputs = dict(chain.tool_outputs)
        self.id = new_id("resp_")
        self.created_at = int(time.time())
        self.output: list[Item] = []
        self.usage = {"input_tokens": 0, "output_tokens": 0}
        self.event = Sequence()
        self.functions = {t.name for t in request.tools if isinstance(t, FunctionTool)}
        self.file_search: FileSearch | None = None
        self.web_search: WebSearch | None = None
        self.mcp: dict[str, McpServer] = {}  # tool name -> its server
        self.server_calls = 0
        self.model_calls = 0
        self.handed_over = False
        self.cancelled = False
        self.next_cancel_check = 0.0
        self.called_tools = False

    # --- the response object ----------------------------------------------------------------

    def snapshot(self, status: str, error: dict[str, Any] | None = None, incomplete: str | None = None) -> Event:
        request = self.request
        text_format = request.text.format if request.text is not None and request.text.format is not None else None
        usage = None
        if status != "in_progress":
            total = self.usage["input_tokens"] + self.usage["output_tokens"]
            usage = {
                **self.usage,
                "total_tokens": total,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens_details": {"reasoning_tokens": 0},
            }
        conversation = request.conversation_id
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "model": request.model,
            "output": list(self.output),
            "instructions": request.instructions,
            "metadata": request.metadata,
            "parallel_tool_calls": request.parallel_tool_calls,
            "previous_response_id": request.previous_response_id,
            "conversation": {"id": conversation} if conversation else None,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "tool_choice": request.tool_choice
            if isinstance(request.tool_choice, str)
            else request.tool_choice.model_dump(exclude_none=True),
            "tools": [tool.model_dump(exclude_none=True, by_alias=True) for tool in request.tools],
            "max_output_tokens": request.max_output_tokens,
            "max_tool_calls": request.max_tool_calls,
            "text": {"format": text_format.model_dump(by_alias=True) if text_format else {"type": "text"}},
            "truncation": "disabled",
            "store": request.store,
            "user": request.user,
            "usage": usage,
            "error": error,
            "incomplete_details": {"reason": incomplete} if incomplete else None,
        }

    def record(self, response: Event) -> StoredResponse:
        return StoredResponse(
            response=response, input_items=self.input_items, context=self.context, tool_outputs=self.tool_outputs
        )

    # --- the loop ---------------------------------------------------------------------------

    async def events(self) -> AsyncIterator[Event]:
        yield self.event("response.created", response=self.snapshot("in_progress"))
        yield self.event("response.in_progress", response=self.snapshot("in_progress"))
        async with AsyncExitStack() as exits:
            try:
                async for event in self._prepare_tools(exits):
                    yield event
                async for event in self._answer_approvals():
                    yield event
                status, reason = "incomplete", "max_tool_rounds"
                for _ in range(MAX_MODEL_CALLS):
                    async for event in self._model_round():
                        yield event
                    if self.cancelled:
                        status, reason = "cancelled", "cancelled"
                        break
                    if self.handed_over or not self.called_tools:
                        status, reason = "completed", ""
                        break
            except StackError as error:
                failure = {
                    "code": "server_error" if _server_side(error) else "invalid_request",
                    "message": error.message,
                }
                yield self.event("response.failed", response=self.snapshot("failed", error=failure))
                return
        final = self.snapshot(status, incomplete=reason or None)
        # A cancelled response ends like an incomplete one: the SDKs know no other event for it.
        kind = "response.completed" if status == "completed" else "response.incomplete"
        yield self.event(kind, response=final)

    async def _prepare_tools(self, exits: AsyncExitStack) -> AsyncIterator[Event]:
        services, request = self.services, self.request
        include_results = "file_search_call.results" in request.include
        for tool in request.tools:
            if isinstance(tool, FileSearchTool):
                self.file_search = FileSearch(tool, services.stores, include_results)
            elif isinstance(tool, McpTool):
                server = McpServer(tool, services.outbound)
                item_id = new_id("mcpl_")
                yield self.event("response.mcp_list_tools.in_progress", item_id=item_id, output_index=len(self.output))
                listing = {**await server.connect(exits), "id": item_id}
                clash = [t["name"] for t in server.tools if t["name"] in self.mcp or t["name"] in self.functions]
                if clash:
                    raise InvalidRequest(f"tools: MCP tool names clash with other tools: {', '.join(clash)}")
                self.mcp.update({t["name"]: server for t in server.tools})
                for event in self._emit_item(listing):
                    yield event
                yield self.event(
                    "response.mcp_list_tools.completed", item_id=item_id, output_index=len(self.output) - 1
                )
            elif not isinstance(tool, FunctionTool):
                self.web_search = WebSearch(services.web_timeout_s)

    async def _answer_approvals(self) -> AsyncIterator[Event]:
        """Run (or decline) the MCP calls the client answered with an mcp_approval_response."""
        requests = {item["id"]: item for item in self.context if item["type"] == "mcp_approval_request"}
        for raw in self.input_items:
            if raw["type"] != "mcp_approval_response":
                continue
            answer = McpApprovalResponseItem.model_validate(raw)
            asked = requests.get(answer.approval_request_id)
            if asked is None:
                raise InvalidRequest(f"input: no mcp_approval_request '{answer.approval_request_id}' in this chain")
            server = self.mcp.get(asked["name"])
            if server is None:
                raise InvalidRequest(f"input: the MCP tool '{asked['name']}' is not among this request's tools")
            if answer.approve:
                async for event in self._run_tool(server.call(asked["name"], asked["arguments"]), "mcp_call"):
                    yield event
            else:
                call_id = answer.approval_request_id
                self._tell_model(call_id, asked["name"], asked["arguments"], "declined by the user")

    # --- one model call ---------------------------------------------------------------------

    def _chat_request(self) -> ChatCompletionRequest:
        request = self.request
        budget_left = request.max_tool_calls is None or self.server_calls < request.max_tool_calls
        specs = [
            function_spec(t.name, t.description or "", t.parameters or {"type": "object", "properties": {}})
            for t in request.tools
            if isinstance(t, FunctionTool)
        ]
        if budget_left:
            specs += [tool.spec() for tool in (self.file_search, self.web_search) if tool is not None]
            for server in dict.fromkeys(self.mcp.values()):
                specs += server.specs()
        body = oai.ChatCompletionsRequest(
            model=request.model,
            messages=chat_messages(request.instructions, self.context, self.tool_outputs),
            tools=specs or None,
            tool_choice=self._tool_choice() if specs else None,
            response_format=_response_format(request),
            max_tokens=request.max_output_tokens,
            temperature=request.temperature,
            top_p=request.top_p,
            stream=True,
        )
        return to_chat_request(body)

    def _tool_choice(self) -> Any:
        choice = self.request.tool_choice
        if self.model_calls > 0 and choice != "none":
            return "auto"  # a forced choice forces the first call only, or a tool would be called forever
        if isinstance(choice, str):
            return choice
        name = {"file_search": "file_search", "web_search": "web_search", "web_search_preview": "web_search"}.get(
            choice.type, choice.name
        )
        if not name:
            raise InvalidRequest(f"tool_choice: a '{choice.type}' choice needs a name")
        return oai.NamedToolChoice(function=oai.NamedToolChoiceFunction(name=name))

    async def _model_round(self) -> AsyncIterator[Event]:
        """Stream one model call, then run or hand over the tools it called (`called_tools`);
        `handed_over` tells whether the client must act before the model can go on."""
        stream = self.services.chat.chat_completion_stream(self._chat_request())
        self.model_calls += 1
        message = MessageBuilder(self.output, self.context, self.event)
        calls: list[tuple[str, str]] = []
        held: str | None = None  # one text delta held back: it may be a shield's refusal
        try:
            async for chunk in stream:
                if await self._cancel_requested():
                    break
                event = chunk.event
                violation: SafetyViolation | None = getattr(chunk, "violation", None)
                if violation is not None:
                    for e in message.refusal((held or "").lstrip("\n")):
                        yield e
                    held = None
                    continue
                if held is not None:
                    for e in message.text(held):
                        yield e
                    held = None
                delta = event.delta
                if isinstance(delta, str):
                    held = delta or None
                elif isinstance(delta, ToolCallDelta) and delta.parse_status == ToolCallParseStatus.success:
                    if not isinstance(delta.content, str):
                        calls.append((delta.content.tool_name, json.dumps(delta.content.arguments)))
                if event.event_type == ChatCompletionEventType.complete and event.usage is not None:
                    self.usage["input_tokens"] += event.usage.prompt_tokens
                    self.usage["output_tokens"] += event.usage.completion_tokens
        finally:
            await stream.aclose()  # type: ignore[attr-defined]
        if held is not None:
            for e in message.text(held):
                yield e
        for e in message.finish("incomplete" if self.cancelled else "completed"):
            yield e
        if self.cancelled:
            return
        if not self.request.parallel_tool_calls:
            calls = calls[:1]
        self.called_tools = bool(calls)
        for name, arguments in calls:
            async for e in self._call(name, arguments):
                yield e
            asks_approval = bool(self.output) and self.output[-1]["type"] == "mcp_approval_request"
            self.handed_over = self.handed_over or name in self.functions or asks_approval

    async def _cancel_requested(self) -> bool:
        """Whether POST /cancel (on any replica) asked to stop; the store is read at most every
        CANCEL_POLL_S, so a stream pays for one read per interval, not per token."""
        now = time.monotonic()
        if not self.cancelled and now >= self.next_cancel_check:
            self.next_cancel_check = now + CANCEL_POLL_S
            self.cancelled = await self.services.store.cancel_requested(self.id)
        return self.cancelled

    async def _call(self, name: str, arguments: str) -> AsyncIterator[Event]:
        if name in self.functions:
            item = {
                "type": "function_call",
                "id": new_id("fc_"),
                "call_id": new_id("call_"),
                "name": name,
                "arguments": arguments,
                "status": "completed",
            }
            opening = {**item, "arguments": "", "status": "in_progress"}
            yield self.event("response.output_item.added", output_index=len(self.output), item=opening)
            fields = {"item_id": item["id"], "output_index": len(self.output)}
            yield self.event("response.function_call_arguments.delta", delta=arguments, **fields)
            yield self.event("response.function_call_arguments.done", arguments=arguments, **fields)
            self.output.append(item)
            self.context.append(item)
            yield self.event("response.output_item.done", output_index=len(self.output) - 1, item=item)
            return
        self.server_calls += 1
        if name == "file_search" and self.file_search is not None:
            async for event in self._run_tool(self.file_search.run(arguments), "file_search_call"):
                yield event
        elif name == "web_search" and self.web_search is not None:
            async for event in self._run_tool(self.web_search.run(arguments), "web_search_call"):
                yield event
        elif name in self.mcp and needs_approval(self.mcp[name].tool, name):
            server = self.mcp[name]
            item = {
                "type": "mcp_approval_request",
                "id": new_id("mcpr_"),
                "server_label": server.tool.server_label,
                "name": name,
                "arguments": arguments,
            }
            for event in self._emit_item(item):
                yield event
        elif name in self.mcp:
            async for event in self._run_tool(self.mcp[name].call(name, arguments), "mcp_call"):
                yield event
        else:  # the model named a tool it was not given: tell it, as a tool result
            self._tell_model(new_id("call_"), name, arguments, f"no tool named {name}")

    async def _run_tool(self, running: Awaitable[ToolRun], kind: str) -> AsyncIterator[Event]:
        prefix = kind
        index = len(self.output)
        placeholder_id = new_id("tool_")
        yield self.event(f"response.{prefix}.in_progress", item_id=placeholder_id, output_index=index)
        if kind != "mcp_call":
            yield self.event(f"response.{prefix}.searching", item_id=placeholder_id, output_index=index)
        run = await running
        item = {**run.item, "id": placeholder_id}
        self.tool_outputs[placeholder_id] = run.output
        outcome = "failed" if kind == "mcp_call" and item.get("error") else "completed"
        yield self.event(f"response.{prefix}.{outcome}", item_id=placeholder_id, output_index=index)
        for event in self._emit_item(item):
            yield event

    def _tell_model(self, call_id: str, name: str, arguments: str, output: str) -> None:
        """A tool result only the model sees (a declined approval, a tool it made up)."""
        self.context.append({"type": "function_call", "call_id": call_id, "name": name, "arguments": arguments})
        self.context.append({"type": "function_call_output", "call_id": call_id, "output": output})

    def _emit_item(self, item: Item) -> list[Event]:
        index = len(self.output)
        self.output.append(item)
        self.context.append(item)
        return [
            self.event("response.output_item.added", output_index=index, item=item),
            self.event("response.output_item.done", output_index=index, item=item),
        ]


def _response_format(request: CreateResponseRequest) -> oai.ResponseFormatSpec | None:
    text_format = request.text.format if request.text is not None else None
    if text_format is None or text_format.type == "text":
        return None
    if text_format.type == "json_object":
        return oai.ResponseFormatSpec(type="json_object")
    spec = oai.JsonSchemaSpec(name=text_format.name, schema=text_format.schema_, strict=text_format.strict)
    return oai.ResponseFormatSpec(type="json_schema", json_schema=spec)


def _server_side(error: StackError) -> bool:
    return not isinstance(error, InvalidRequest | NotFound | Forbidden | PayloadTooLarge)
