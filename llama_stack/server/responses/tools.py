"""The tools a response runs on the server: `file_search` over vector stores, `web_search`
through the agents' search tool, and the tools of remote MCP servers (the official `mcp`
client, streamable HTTP or SSE). Each is shown to the model as a function; each call becomes an
output item and a result the model reads."""

from __future__ import annotations

import json
import os
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import httpx

from llama_stack.apis.common import ToolCall, content_text
from llama_stack.apis.errors import InvalidRequest, UpstreamError
from llama_stack.apis.responses import FileSearchTool, McpApprovalFilter, McpTool, McpToolFilter
from llama_stack.apis.vector_stores import RankingOptions, SearchRequest, SearchResult, VectorStores
from llama_stack.distribution.outbound import OutboundPolicy
from llama_stack.distribution.request_context import provider_value
from llama_stack.server import openai_types as oai

from .items import Item, new_id

QUERY_SCHEMA = {
    "type": "object",
    "properties": {"query": {"type": "string", "description": "what to search for"}},
    "required": ["query"],
}


def function_spec(name: str, description: str, parameters: dict[str, Any]) -> oai.ToolSpec:
    return oai.ToolSpec(function=oai.FunctionDefinition(name=name, description=description, parameters=parameters))


@dataclass
class ToolRun:
    item: Item  # the output item the client sees
    output: str  # what the model reads


def _query(arguments: str) -> str:
    try:
        query = json.loads(arguments or "{}").get("query")
    except (json.JSONDecodeError, AttributeError):
        query = None
    if not isinstance(query, str) or not query.strip():
        raise InvalidRequest("the model called a search tool without a `query` string")
    return query


class FileSearch:
    name = "file_search"

    def __init__(self, tool: FileSearchTool, stores: VectorStores | None, include_results: bool) -> None:
        if stores is None:
            raise InvalidRequest("tools: file_search needs the memory API, which this distribution does not serve")
        self.tool = tool
        self.stores = stores
        self.include_results = include_results

    def spec(self) -> oai.ToolSpec:
        return function_spec(self.name, "Search the user's files for passages relevant to a query.", QUERY_SCHEMA)

    async def run(self, arguments: str) -> ToolRun:
        query = _query(arguments)
        options = self.tool.ranking_options
        ranking = RankingOptions(score_threshold=options.score_threshold) if options is not None else None
        found: list[SearchResult] = []
        for vector_store_id in self.tool.vector_store_ids:
            request = SearchRequest(
                query=query,
                filters=self.tool.filters,
                max_num_results=self.tool.max_num_results,
                ranking_options=ranking,
            )
            found.extend((await self.stores.search(vector_store_id, request)).data)
        best = sorted(found, key=lambda r: -r.score)[: self.tool.max_num_results]
        results = [
            {
                "file_id": r.file_id,
                "filename": r.filename,
                "score": r.score,
                "attributes": r.attributes,
                "text": "".join(c.text for c in r.content),
            }
            for r in best
        ]
        item: Item = {"type": "file_search_call", "id": new_id("fs_"), "status": "completed", "queries": [query]}
        item["results"] = results if self.include_results else None
        passages = "\n\n".join(f"[{i}] {r['filename']}:\n{r['text']}" for i, r in enumerate(results, 1))
        return ToolRun(item, passages or "No passage of the files matches the query.")


class WebSearch:
    name = "web_search"
    ENGINES = (("tavily", "tavily_search_api_key"), ("brave", "brave_search_api_key"), ("bing", "bing_search_api_key"))

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s  # a client per search: building one costs more than a rare search saves

    def spec(self) -> oai.ToolSpec:
        return function_spec(self.name, "Search the web for up-to-date information.", QUERY_SCHEMA)

    def _engine(self) -> str:
        for engine, key in self.ENGINES:
            if provider_value(key) or os.environ.get(key.upper()):
                return engine
        return "tavily"  # without any key the tool answers the model why it cannot search

    async def run(self, arguments: str) -> ToolRun:
        # The agents' search tool, shared so both faces search alike (it imports only httpx).
        from llama_stack.apis.agents import SearchToolDefinition
        from llama_stack.providers.agents.tools.config import WebToolsConfig
        from llama_stack.providers.agents.tools.web import WebSearchTool

        query = _query(arguments)
        definition = SearchToolDefinition(engine=self._engine())  # type: ignore[arg-type]
        async with httpx.AsyncClient(timeout=self.timeout_s, follow_redirects=False) as http:
            tool = WebSearchTool(definition, WebToolsConfig(), http)
            outcome = await tool.run(ToolCall(call_id="web", tool_name="brave_search", arguments={"query": query}))
        item: Item = {
            "type": "web_search_call",
            "id": new_id("ws_"),
            "status": "completed",
            "action": {"type": "search", "query": query},
        }
        return ToolRun(item, content_text(outcome.content))


def _listed(names: list[str] | None, name: str) -> bool:
    return names is not None and name in names


def needs_approval(tool: McpTool, name: str) -> bool:
    """OpenAI's rule: "always", "never", or tools named under `never` skip approval and every
    other tool asks for it (unknown tools are the riskier default)."""
    rule = tool.require_approval
    if isinstance(rule, McpApprovalFilter):
        return not (rule.never is not None and _listed(rule.never.tool_names, name))
    return rule == "always"


def _allowed(tool: McpTool, name: str) -> bool:
    allowed = tool.allowed_tools
    if allowed is None:
        return True
    names = allowed.tool_names if isinstance(allowed, McpToolFilter) else allowed
    return names is None or name in names


class McpServer:
    """One MCP server for the length of one response: connected once, its tools listed once."""

    def __init__(self, tool: McpTool, outbound: OutboundPolicy) -> None:
        self.tool = tool
        self.outbound = outbound
        self.session: Any = None
        self.tools: list[dict[str, Any]] = []

    async def connect(self, exits: AsyncExitStack) -> Item:
        from mcp import ClientSession
        from mcp.client.sse import sse_client
        from mcp.client.streamable_http import streamable_http_client

        await self.outbound.check(self.tool.server_url)  # a refused URL is a 400 and is never contacted
        url, headers = self.tool.server_url, self.tool.headers

        def pinned_client(
            headers: dict[str, str] | None = None, timeout: httpx.Timeout | None = None, auth: httpx.Auth | None = None
        ) -> httpx.AsyncClient:
            return httpx.AsyncClient(
                headers=headers,
                timeout=timeout or httpx.Timeout(30, read=300),
                auth=auth,
                follow_redirects=True,
                transport=PinnedTransport(self.outbound),
            )

        try:
            if url.rstrip("/").endswith("/sse"):
                transport = sse_client(url, headers=headers, httpx_client_factory=pinned_client)
                read, write = await exits.enter_async_context(transport)
            else:
                http = await exits.enter_async_context(pinned_client(headers))
                read, write, _ = await exits.enter_async_context(streamable_http_client(url, http_client=http))
            self.session = await exits.enter_async_context(ClientSession(read, write))
            await self.session.initialize()
            listed = await self.session.list_tools()
        except Exception as e:  # the mcp client raises transport and protocol errors of many kinds
            raise UpstreamError(f"MCP server '{self.tool.server_label}' ({url}) failed: {_reason(e)}") from e
        self.tools = [
            {"name": t.name, "description": t.description, "input_schema": t.inputSchema, "annotations": None}
            for t in listed.tools
            if _allowed(self.tool, t.name)
        ]
        return {
            "type": "mcp_list_tools",
            "id": new_id("mcpl_"),
            "server_label": self.tool.server_label,
            "tools": self.tools,
        }

    def specs(self) -> list[oai.ToolSpec]:
        return [function_spec(t["name"], t.get("description") or "", t["input_schema"]) for t in self.tools]

    async def call(self, name: str, arguments: str) -> ToolRun:
        item: Item = {
            "type": "mcp_call",
            "id": new_id("mcp_"),
            "server_label": self.tool.server_label,
            "name": name,
            "arguments": arguments,
            "output": None,
            "error": None,
        }
        try:
            result = await self.session.call_tool(name, json.loads(arguments or "{}"))
        except Exception as e:  # a failing tool is reported to the model, it does not fail the response
            item["error"] = _reason(e)
            return ToolRun(item, f"error: {item['error']}")
        text = "\n".join(getattr(part, "text", "") for part in result.content)
        if result.isError:
            item["error"] = text or "the tool failed"
            return ToolRun(item, f"error: {item['error']}")
        item["output"] = text
        return ToolRun(item, text)


class PinnedTransport(httpx.AsyncBaseTransport):
    """Every request (redirects included) checked by the outbound policy and sent to the very
    address that was checked, with the original Host header and TLS name: a host name that
    resolves elsewhere on the next lookup (DNS rebinding) changes nothing."""

    def __init__(self, policy: OutboundPolicy) -> None:
        self.policy = policy
        self.inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        original = request.url
        target = await self.policy.check(str(original))
        request.url = original.copy_with(host=str(target.address))
        request.headers["Host"] = original.netloc.decode("ascii")
        if original.scheme == "https":
            request.extensions = {**request.extensions, "sni_hostname": target.host}
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def _reason(error: BaseException) -> str:
    inner = getattr(error, "exceptions", None)  # anyio task groups wrap the cause
    if inner:
        return _reason(inner[0])
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
