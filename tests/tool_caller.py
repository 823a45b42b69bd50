"""A scripted model that calls tools by rule, for the agent loops' tests (it proves plumbing, not
judgement):

- a prompt `call <tool> <json arguments>` makes it call that tool, when the tool is on offer;
  `call <tool> about <query>` calls it with {"query": "<query>"}; several `call` clauses joined by
  ` and ` make parallel calls;
- after a tool result it answers `Tool <name> said: <result>`;
- a prompt starting with `slowly` is answered with its words again and again, one every 20 ms,
  for 30 seconds (a long generation to cancel or disconnect from);
- otherwise it answers `You said: <prompt>`, word by word.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from llama_stack.apis.common import StopReason, ToolCall, ToolResponseMessage, content_text
from llama_stack.apis.errors import NotImplementedYet
from llama_stack.apis.inference import (
    ChatCompletionEventType,
    ChatCompletionRequest,
    ChatCompletionResponse,
    ChatCompletionResponseEvent,
    ChatCompletionResponseStreamChunk,
    CompletionRequest,
    CompletionResponse,
    EmbeddingsRequest,
    EmbeddingsResponse,
    ToolCallDelta,
    ToolCallParseStatus,
    Usage,
)
from llama_stack.apis.models import Model
from llama_stack.distribution.provider import Api, Deps, ProviderSpec

CALL = re.compile(r"call (?P<tool>[\w-]+)(?: about (?P<query>.+?)| (?P<json>\{.*?\}))?(?= and call |$)")


class ToolCallerConfig(BaseModel):
    pass


def _chunk(
    kind: ChatCompletionEventType,
    delta: str | ToolCallDelta,
    stop: StopReason | None = None,
    usage: Usage | None = None,
) -> ChatCompletionResponseStreamChunk:
    return ChatCompletionResponseStreamChunk(
        event=ChatCompletionResponseEvent(event_type=kind, delta=delta, stop_reason=stop, usage=usage)
    )


class ToolCaller:
    def __init__(self) -> None:
        self.requests: list[ChatCompletionRequest] = []

    async def register_model(self, model: Model) -> Model:
        return model

    def _plan(self, request: ChatCompletionRequest) -> tuple[str, list[ToolCall]]:
        last = request.messages[-1]
        if isinstance(last, ToolResponseMessage):
            return f"Tool {last.tool_name} said: {content_text(last.content)}", []
        prompt = content_text(last.content)
        offered = {tool.tool_name for tool in request.tools}
        calls = []
        for index, match in enumerate(CALL.finditer(prompt)):
            if match["tool"] not in offered:
                continue
            arguments = json.loads(match["json"]) if match["json"] else {"query": match["query"] or prompt}
            calls.append(ToolCall(call_id=f"call-{index}", tool_name=match["tool"], arguments=arguments))
        return ("", calls) if calls else (f"You said: {prompt}", [])

    async def chat_completion_stream(
        self, request: ChatCompletionRequest
    ) -> AsyncIterator[ChatCompletionResponseStreamChunk]:
        self.requests.append(request)
        text, calls = self._plan(request)
        yield _chunk(ChatCompletionEventType.start, "")
        words = text.split(" ") if text else []
        slow = text.startswith("You said: slowly")
        if slow:
            words = (words * 1500)[:1500]
        limit = request.sampling_params.max_tokens or len(words)
        for index, word in enumerate(words[:limit]):
            if slow:
                await asyncio.sleep(0.02)
            yield _chunk(ChatCompletionEventType.progress, word if index == 0 else " " + word)
        for call in calls:
            yield _chunk(
                ChatCompletionEventType.progress, ToolCallDelta(content=call, parse_status=ToolCallParseStatus.success)
            )
        usage = Usage(
            prompt_tokens=sum(len(content_text(m.content).split()) for m in request.messages),
            completion_tokens=len(words[:limit]),
        )
        stop = StopReason.end_of_message if calls else StopReason.end_of_turn
        yield _chunk(ChatCompletionEventType.complete, "", stop, usage)

    async def chat_completion(self, request: ChatCompletionRequest) -> ChatCompletionResponse:
        raise NotImplementedYet("the tool caller only streams")

    async def completion(self, request: CompletionRequest) -> CompletionResponse:
        raise NotImplementedYet("the tool caller only chats")

    async def embeddings(self, request: EmbeddingsRequest) -> EmbeddingsResponse:
        raise NotImplementedYet("the tool caller does not embed")


async def _factory(config: ToolCallerConfig, deps: Deps) -> ToolCaller:
    return ToolCaller()


TOOL_CALLER_SPEC = ProviderSpec(
    api=Api.inference,
    provider_type="test::tool-caller",
    config_class=ToolCallerConfig,
    factory=_factory,
    description="calls tools by rule, for tests of agent loops",
)


def agent_stack_config(state: Path, model_id: str, server: dict[str, Any]) -> dict[str, Any]:
    """A run config for the agent surfaces' tests: this tool caller as `model_id`, real MiniLM
    embeddings on FAISS, and a Llama Guard shield over the scripted guard model."""
    return {
        "version": 2,
        "image_name": "agent-surface",
        "providers": {
            "inference": [
                {"provider_id": "caller", "provider_type": "test::tool-caller"},
                {"provider_id": "st", "provider_type": "inline::sentence-transformers", "config": {"device": "cpu"}},
                {"provider_id": "guard", "provider_type": "test::scripted-llama-guard"},
            ],
            "memory": [
                {
                    "provider_id": "faiss",
                    "provider_type": "inline::faiss",
                    "config": {"persist_dir": str(state / "faiss")},
                }
            ],
            "safety": [
                {"provider_id": "llama-guard", "provider_type": "inline::llama-guard", "config": {"vision_model": None}}
            ],
        },
        "metadata_store": {"type": "sqlite", "db_path": str(state / "registry.db")},
        "models": [
            {"model_id": model_id, "provider_id": "caller"},
            {
                "model_id": "all-MiniLM-L6-v2",
                "model_type": "embedding",
                "provider_id": "st",
                "metadata": {"embedding_dimension": 384},
            },
            {"model_id": "Llama-Guard-3-1B", "provider_id": "guard"},
        ],
        "shields": [{"shield_id": "llama_guard", "provider_id": "llama-guard"}],
        "server": server,
    }
