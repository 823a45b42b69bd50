"""Web tools: search (Brave, Tavily, Bing) and Wolfram Alpha, over httpx.

Each answers the model with compact JSON: the query and the top results, or `{"error": ...}` with
a reason the model can relay (no key, a refused key, a service down). A failing service never
fails the turn.
"""

from __future__ import annotations

import json
import os
from typing import Any

import httpx

from llama_stack.apis.agents import SearchToolDefinition, WolframAlphaToolDefinition
from llama_stack.apis.common import ToolCall
from llama_stack.distribution.request_context import provider_value

from .config import WebToolsConfig
from .toolbox import ToolOutcome

BRAVE_URL = "https://api.search.brave.com/res/v1/web/search"
TAVILY_URL = "https://api.tavily.com/search"
BING_URL = "https://api.bing.microsoft.com/v7.0/search"
WOLFRAM_URL = "https://api.wolframalpha.com/v2/query"
MAX_ANSWER_BYTES = 4 * 1024 * 1024


class ToolFailure(Exception):
    pass


def resolve_key(name: str, from_tool: str, configured: str | None) -> str:
    """The request's provider data first, then the tool definition, the config, the environment."""
    key = provider_value(name) or from_tool or configured or os.environ.get(name.upper(), "")
    if not key:
        raise ToolFailure(
            f"no API key: send {name} in the X-LlamaStack-ProviderData header, set it in the agents provider "
            f"config or in the {name.upper()} environment variable"
        )
    return key


def _query(call: ToolCall) -> str:
    query = call.arguments.get("query")
    if not isinstance(query, str) or not query.strip():
        raise ToolFailure(f"{call.tool_name} needs a `query` argument")
    return query


async def _fetch(http: httpx.AsyncClient, service: str, request: httpx.Request) -> Any:
    """Send a request to a search service's fixed public URL. A redirect is not followed (the
    service's answer must not lead the server elsewhere, e.g. to a metadata address), and the
    body is read up to MAX_ANSWER_BYTES."""
    try:
        response = await http.send(request, stream=True, follow_redirects=False)
        try:
            body = await _read_capped(response, service)
        finally:
            await response.aclose()
    except httpx.TimeoutException:
        raise ToolFailure(f"{service} did not answer in time") from None
    except httpx.TransportError as e:
        raise ToolFailure(f"{service} is unreachable: {type(e).__name__}") from None
    if response.status_code in (401, 403):
        raise ToolFailure(f"{service} refused the API key (HTTP {response.status_code})")
    if response.status_code == 429:
        raise ToolFailure(f"{service} rate-limited the request (HTTP 429)")
    if response.is_redirect:
        raise ToolFailure(f"{service} answered with a redirect (HTTP {response.status_code}), which is not followed")
    if response.status_code >= 400:
        raise ToolFailure(f"{service} failed with HTTP {response.status_code}")
    try:
        return json.loads(body)
    except ValueError:
        raise ToolFailure(f"{service} answered with something that is not JSON") from None


async def _read_capped(response: httpx.Response, service: str) -> bytes:
    body = bytearray()
    async for piece in response.aiter_bytes():
        body += piece
        if len(body) > MAX_ANSWER_BYTES:
            raise ToolFailure(f"{service} answered with more than {MAX_ANSWER_BYTES} bytes")
    return bytes(body)


def _answer(payload: dict[str, Any]) -> ToolOutcome:
    return ToolOutcome(json.dumps(payload, ensure_ascii=False))


class WebSearchTool:
    """The `brave_search` builtin tool; the tool definition's `engine` picks the service."""

    name = "brave_search"

    def __init__(self, definition: SearchToolDefinition, config: WebToolsConfig, http: httpx.AsyncClient) -> None:
        self.definition = definition
        self.config = config
        self.http = http

    async def run(self, call: ToolCall) -> ToolOutcome:
        engine = self.definition.engine
        try:
            query = _query(call)
            search = {"brave": self._brave, "tavily": self._tavily, "bing": self._bing}[engine]
            results = await search(query)
        except ToolFailure as e:
            return _answer({"error": f"{engine} search: {e}"})
        return _answer({"query": query, "top_k": results[: self.config.max_results]})

    def _key(self, name: str, configured: str | None) -> str:
        return resolve_key(name, self.definition.api_key, configured)

    async def _brave(self, query: str) -> list[dict[str, Any]]:
        key = self._key("brave_search_api_key", self.config.brave_search_api_key)
        headers = {"X-Subscription-Token": key, "Accept": "application/json"}
        params: dict[str, str | int] = {"q": query, "count": self.config.max_results}
        request = self.http.build_request("GET", BRAVE_URL, params=params, headers=headers)
        data = await _fetch(self.http, "Brave Search", request)
        results = (data.get("web") or {}).get("results") or []
        return [_pick(r, title="title", url="url", description="description") for r in results]

    async def _tavily(self, query: str) -> list[dict[str, Any]]:
        key = self._key("tavily_search_api_key", self.config.tavily_search_api_key)
        body = {"api_key": key, "query": query, "max_results": self.config.max_results}
        request = self.http.build_request("POST", TAVILY_URL, json=body)
        data = await _fetch(self.http, "Tavily", request)
        return [_pick(r, title="title", url="url", content="content", score="score") for r in data.get("results", [])]

    async def _bing(self, query: str) -> list[dict[str, Any]]:
        key = self._key("bing_search_api_key", self.config.bing_search_api_key)
        params: dict[str, str | int] = {"q": query, "count": self.config.max_results, "textFormat": "Raw"}
        request = self.http.build_request("GET", BING_URL, params=params, headers={"Ocp-Apim-Subscription-Key": key})
        data = await _fetch(self.http, "Bing", request)
        pages = (data.get("webPages") or {}).get("value") or []
        return [_pick(p, title="name", url="url", description="snippet") for p in pages]


class WolframAlphaTool:
    name = "wolfram_alpha"

    def __init__(self, definition: WolframAlphaToolDefinition, config: WebToolsConfig, http: httpx.AsyncClient) -> None:
        self.definition = definition
        self.config = config
        self.http = http

    async def run(self, call: ToolCall) -> ToolOutcome:
        try:
            query = _query(call)
            key = resolve_key("wolfram_alpha_api_key", self.definition.api_key, self.config.wolfram_alpha_api_key)
            params = {"input": query, "appid": key, "format": "plaintext", "output": "json"}
            request = self.http.build_request("GET", WOLFRAM_URL, params=params)
            data = await _fetch(self.http, "Wolfram Alpha", request)
        except ToolFailure as e:
            return _answer({"error": f"wolfram_alpha: {e}"})
        result = data.get("queryresult") or {}
        if not result.get("success", False):
            return _answer({"query": query, "error": "Wolfram Alpha has no answer to this query"})
        pods = [
            {"title": pod.get("title", ""), "text": "\n".join(s.get("plaintext") or "" for s in pod.get("subpods", []))}
            for pod in result.get("pods", [])
        ]
        return _answer({"query": query, "pods": [pod for pod in pods if pod["text"].strip()]})


def _pick(item: dict[str, Any], **fields: str) -> dict[str, Any]:
    """`fields` maps our names to the service's."""
    return {ours: item[theirs] for ours, theirs in fields.items() if item.get(theirs) is not None}
