"""Web search (Brave, Tavily, Bing) and Wolfram Alpha against fake HTTP backends (httpx MockTransport)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from llama_stack.apis.agents import SearchToolDefinition, ToolExecutionStep, WolframAlphaToolDefinition
from llama_stack.apis.common import ToolCall, content_text
from llama_stack.distribution.provider import Api, Deps
from llama_stack.distribution.request_context import reset_provider_data, set_provider_data
from llama_stack.distribution.store import SqliteKVStoreConfig, kvstore_from_config
from llama_stack.providers.agents.reference.agents import MetaReferenceAgents
from llama_stack.providers.agents.reference.config import MetaReferenceAgentsConfig
from llama_stack.providers.agents.reference.persistence import AgentStore
from llama_stack.providers.agents.tools.config import WebToolsConfig
from llama_stack.providers.agents.tools.web import MAX_ANSWER_BYTES, WebSearchTool, WolframAlphaTool
from tests.providers.agents.conftest import StackFactory
from tests.providers.agents.fakes import call, final_turn, new_session, run_turn, user

Handler = Callable[[httpx.Request], httpx.Response]

BRAVE_ANSWER = {
    "web": {
        "results": [
            {"title": "Llama Stack", "url": "https://llama.example/stack", "description": "An agent stack", "x": 1},
            {"title": "Llamas", "url": "https://llama.example/animal", "description": "Camelids"},
        ]
    }
}
TAVILY_ANSWER = {"results": [{"title": "T", "url": "https://t.example", "content": "tavily text", "score": 0.9}]}
BING_ANSWER = {"webPages": {"value": [{"name": "B", "url": "https://b.example", "snippet": "bing text"}]}}
WOLFRAM_ANSWER = {
    "queryresult": {
        "success": True,
        "pods": [
            {"title": "Input", "subpods": [{"plaintext": "integrate x^2"}]},
            {"title": "Result", "subpods": [{"plaintext": "x^3/3 + constant"}]},
            {"title": "Plot", "subpods": [{"plaintext": ""}]},
        ],
    }
}


def recording(answer: dict[str, Any], seen: list[httpx.Request], status: int = 200) -> httpx.AsyncClient:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status, json=answer)

    return httpx.AsyncClient(transport=httpx.MockTransport(handle))


def search_call(query: str = "llama stack") -> ToolCall:
    return ToolCall(call_id="s1", tool_name="brave_search", arguments={"query": query})


async def search(engine: str, answer: dict[str, Any], config: WebToolsConfig, seen: list[httpx.Request]) -> Any:
    definition = SearchToolDefinition(engine=engine)  # type: ignore[arg-type]
    outcome = await WebSearchTool(definition, config, recording(answer, seen)).run(search_call())
    return json.loads(content_text(outcome.content))


async def test_brave_search_sends_the_key_and_returns_the_top_results() -> None:
    seen: list[httpx.Request] = []
    result = await search("brave", BRAVE_ANSWER, WebToolsConfig(brave_search_api_key="brave-key", max_results=1), seen)
    (request,) = seen
    assert request.url.host == "api.search.brave.com" and request.url.params["q"] == "llama stack"
    assert request.headers["X-Subscription-Token"] == "brave-key"
    assert result == {
        "query": "llama stack",
        "top_k": [{"title": "Llama Stack", "url": "https://llama.example/stack", "description": "An agent stack"}],
    }


async def test_tavily_and_bing_search() -> None:
    seen: list[httpx.Request] = []
    result = await search("tavily", TAVILY_ANSWER, WebToolsConfig(tavily_search_api_key="tav-key"), seen)
    assert seen[0].url.host == "api.tavily.com" and seen[0].method == "POST"
    assert json.loads(seen[0].content) == {"api_key": "tav-key", "query": "llama stack", "max_results": 3}
    assert result["top_k"] == [{"title": "T", "url": "https://t.example", "content": "tavily text", "score": 0.9}]

    result = await search("bing", BING_ANSWER, WebToolsConfig(bing_search_api_key="bing-key"), seen)
    assert seen[1].url.host == "api.bing.microsoft.com"
    assert seen[1].headers["Ocp-Apim-Subscription-Key"] == "bing-key"
    assert result["top_k"] == [{"title": "B", "url": "https://b.example", "description": "bing text"}]


async def test_wolfram_alpha_returns_the_pods_with_text() -> None:
    seen: list[httpx.Request] = []
    tool = WolframAlphaTool(
        WolframAlphaToolDefinition(api_key="wa-key"), WebToolsConfig(), recording(WOLFRAM_ANSWER, seen)
    )
    outcome = await tool.run(ToolCall(call_id="w", tool_name="wolfram_alpha", arguments={"query": "integrate x^2"}))
    assert seen[0].url.params["appid"] == "wa-key" and seen[0].url.params["input"] == "integrate x^2"
    assert json.loads(content_text(outcome.content))["pods"] == [
        {"title": "Input", "text": "integrate x^2"},
        {"title": "Result", "text": "x^3/3 + constant"},
    ]


async def test_keys_come_from_provider_data_then_the_tool_then_the_config_then_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[httpx.Request] = []
    monkeypatch.setenv("BRAVE_SEARCH_API_KEY", "from-env")

    async def key_used(definition_key: str, config_key: str | None) -> str:
        definition = SearchToolDefinition(api_key=definition_key)
        config = WebToolsConfig(brave_search_api_key=config_key)
        await WebSearchTool(definition, config, recording(BRAVE_ANSWER, seen)).run(search_call())
        return seen[-1].headers["X-Subscription-Token"]

    assert await key_used("", None) == "from-env"
    assert await key_used("", "from-config") == "from-config"
    assert await key_used("from-tool", "from-config") == "from-tool"
    token = set_provider_data({"brave_search_api_key": "from-header"})
    try:
        assert await key_used("from-tool", "from-config") == "from-header"
    finally:
        reset_provider_data(token)


async def test_failures_become_answers_the_model_can_relay(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BRAVE_SEARCH_API_KEY", raising=False)
    seen: list[httpx.Request] = []
    result = await search("brave", BRAVE_ANSWER, WebToolsConfig(), seen)
    assert seen == [] and "X-LlamaStack-ProviderData" in result["error"] and "BRAVE_SEARCH_API_KEY" in result["error"]

    result = await search("brave", {}, WebToolsConfig(brave_search_api_key="bad"), seen)  # status 200, no results
    assert result["top_k"] == []
    definition = SearchToolDefinition(api_key="bad")
    refused = WebSearchTool(definition, WebToolsConfig(), recording({}, seen, status=401))
    assert "refused the API key (HTTP 401)" in content_text((await refused.run(search_call())).content)

    def unreachable(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("no route", request=request)

    down = WebSearchTool(definition, WebToolsConfig(), httpx.AsyncClient(transport=httpx.MockTransport(unreachable)))
    assert "unreachable" in content_text((await down.run(search_call())).content)


async def test_a_service_redirect_is_not_followed_and_answers_are_capped() -> None:
    """A search service (or whoever answers for it) cannot lead the server to another address."""
    seen: list[httpx.Request] = []

    def redirecting(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.host == "169.254.169.254":
            return httpx.Response(200, json={"web": {"results": [{"title": "instance credentials"}]}})
        return httpx.Response(302, headers={"Location": "http://169.254.169.254/latest/meta-data/"})

    # The agents provider's client follows redirects by default; the web tools do not.
    http = httpx.AsyncClient(transport=httpx.MockTransport(redirecting), follow_redirects=True)
    tool = WebSearchTool(SearchToolDefinition(api_key="k"), WebToolsConfig(), http)
    answer = content_text((await tool.run(search_call())).content)
    assert "redirect (HTTP 302), which is not followed" in answer and "credentials" not in answer
    assert [r.url.host for r in seen] == ["api.search.brave.com"]

    huge = {"web": {"results": [{"title": "x" * (MAX_ANSWER_BYTES + 1)}]}}
    flooded = WebSearchTool(SearchToolDefinition(api_key="k"), WebToolsConfig(), recording(huge, []))
    assert f"more than {MAX_ANSWER_BYTES} bytes" in content_text((await flooded.run(search_call())).content)


async def test_an_agent_searches_the_web_between_two_inference_steps(agent_stack: StackFactory, tmp_path: Path) -> None:
    seen: list[httpx.Request] = []
    async with agent_stack() as stack:
        deps = Deps({api: stack.routers[api] for api in (Api.inference, Api.models, Api.safety)})
        config = MetaReferenceAgentsConfig(web=WebToolsConfig(brave_search_api_key="k"))
        kv = await kvstore_from_config(SqliteKVStoreConfig(db_path=str(tmp_path / "web-agents.db")))
        agents = MetaReferenceAgents(config, deps, AgentStore(kv), http=recording(BRAVE_ANSWER, seen))
        llm: Any = stack.models.providers["llm"]  # the scripted fake
        llm.will(call("brave_search", query="what is llama stack"))
        agent_id, session_id = await new_session(agents, tools=[SearchToolDefinition()])
        turn = final_turn(await run_turn(agents, agent_id, session_id, user("search it")))
        await agents.shutdown()

    assert [s.step_type for s in turn.steps] == ["inference", "tool_execution", "inference"]
    assert seen[0].url.params["q"] == "what is llama stack"
    tool_step = turn.steps[1]
    assert isinstance(tool_step, ToolExecutionStep)
    assert "Llama Stack" in content_text(tool_step.tool_responses[0].content)
    assert "tool said:" in content_text(turn.output_message.content) and "llama.example" in content_text(
        turn.output_message.content
    )
