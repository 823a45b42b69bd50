"""Scripted providers that drive the agent loop deterministically, installed in-process.

- ScriptedLLM answers from a script (a queue of CompletionMessages, or functions of the request)
  and falls back to rules: a ToolResponseMessage last → "tool said: ...", "run: <code>" → a
  code_interpreter call, "weather in <city>" with a get_weather tool → that call, else an echo that
  quotes any retrieved context. Tool calls stream as ToolCallDelta started → success, as a real
  provider's parser emits them whatever the tool format (json / function_tag / python_list).
- ScriptedSafety flags any message holding a banned word, with an error-level violation.
- ScriptedMemory keeps chunks (one per sentence) and scores them by words shared with the query.
"""

from __future__ import annotations

import asyncio
import re
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

from pydantic import BaseModel

from llama_stack.apis.agents import (
    AgentConfig,
    CreateAgentRequest,
    CreateSessionRequest,
    CreateTurnRequest,
    Turn,
    TurnInputMessage,
    TurnStreamChunk,
)
from llama_stack.apis.common import (
    CompletionMessage,
    SafetyViolation,
    StopReason,
    ToolCall,
    ToolResponseMessage,
    UserMessage,
    content_text,
)
from llama_stack.apis.errors import InvalidRequest
from llama_stack.apis.inference import (
    ChatCompletionEventType,
    ChatCompletionRequest,
    ChatCompletionResponse,
    ChatCompletionResponseEvent,
    ChatCompletionResponseStreamChunk,
    EmbeddingsRequest,
    EmbeddingsResponse,
    ToolCallDelta,
    ToolCallParseStatus,
)
from llama_stack.apis.memory import Chunk, InsertDocumentsRequest, QueryDocumentsRequest, QueryDocumentsResponse
from llama_stack.apis.memory_banks import MemoryBank
from llama_stack.apis.safety import RunShieldRequest, RunShieldResponse
from llama_stack.apis.shields import Shield
from llama_stack.distribution.provider import Api, Deps, ProviderSpec
from llama_stack.distribution.registry import install_provider
from llama_stack.distribution.resolver import Stack, build_stack
from llama_stack.distribution.spec import parse_run_config

LLM, SAFETY, MEMORY = "test::agents-llm", "test::agents-safety", "test::agents-memory"
MODEL, EMBEDDER, SHIELD = "agent-llm", "agent-embedder", "word-guard"

# A program that writes a 1x1 PNG without any third-party package.
TINY_PNG_PROGRAM = """
import struct, zlib
def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
png = b"\\x89PNG\\r\\n\\x1a\\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
png += chunk(b"IDAT", zlib.compress(b"\\x00\\xff\\x00\\x00")) + chunk(b"IEND", b"")
open("plot.png", "wb").write(png)
print("saved")
"""

Reply = CompletionMessage | Callable[[ChatCompletionRequest], CompletionMessage]


def call(tool_name: str, call_id: str = "call-1", **arguments: Any) -> CompletionMessage:
    return CompletionMessage(
        content="",
        stop_reason=StopReason.end_of_message,
        tool_calls=[ToolCall(call_id=call_id, tool_name=tool_name, arguments=arguments)],
    )


def say(text: str) -> CompletionMessage:
    return CompletionMessage(content=text, stop_reason=StopReason.end_of_turn)


class LLMConfig(BaseModel):
    latency_s: float = 0.0  # per inference call, before the first token


class ScriptedLLM:
    def __init__(self, config: LLMConfig) -> None:
        self.config = config
        self.script: deque[Reply] = deque()
        self.requests: list[ChatCompletionRequest] = []
        self.abandoned_streams = 0
        self.streams: list[AsyncIterator[ChatCompletionResponseStreamChunk]] = []

    def will(self, *replies: Reply) -> None:
        self.script.extend(replies)

    def _reply(self, request: ChatCompletionRequest) -> CompletionMessage:
        self.requests.append(request)
        if self.script:
            reply = self.script.popleft()
            return reply(request) if callable(reply) else reply
        return rules(request)

    async def chat_completion(self, request: ChatCompletionRequest) -> ChatCompletionResponse:
        await asyncio.sleep(self.config.latency_s)
        return ChatCompletionResponse(completion_message=self._reply(request))

    def chat_completion_stream(
        self, request: ChatCompletionRequest
    ) -> AsyncIterator[ChatCompletionResponseStreamChunk]:
        # Held here, a stream is closed only when its consumer closes it, never by the collector.
        stream = self._stream(self._reply(request))
        self.streams.append(stream)
        return stream

    async def _stream(self, message: CompletionMessage) -> AsyncIterator[ChatCompletionResponseStreamChunk]:
        await asyncio.sleep(self.config.latency_s)
        yield _chunk(ChatCompletionEventType.start, "")
        try:
            for index, word in enumerate(content_text(message.content).split(" ") if message.content else []):
                yield _chunk(ChatCompletionEventType.progress, word if index == 0 else " " + word)
        except GeneratorExit:
            self.abandoned_streams += 1
            raise
        for tool_call in message.tool_calls:
            started = ToolCallDelta(content="", parse_status=ToolCallParseStatus.started)
            yield _chunk(ChatCompletionEventType.progress, started)
            parsed = ToolCallDelta(content=tool_call, parse_status=ToolCallParseStatus.success)
            yield _chunk(ChatCompletionEventType.progress, parsed)
        yield _chunk(ChatCompletionEventType.complete, "", message.stop_reason)

    async def embeddings(self, request: EmbeddingsRequest) -> EmbeddingsResponse:
        return EmbeddingsResponse(embeddings=[[float(len(content_text(c))), 1.0] for c in request.contents])


def _chunk(
    kind: ChatCompletionEventType, delta: str | ToolCallDelta, stop: StopReason | None = None
) -> ChatCompletionResponseStreamChunk:
    return ChatCompletionResponseStreamChunk(
        event=ChatCompletionResponseEvent(event_type=kind, delta=delta, stop_reason=stop)
    )


def rules(request: ChatCompletionRequest) -> CompletionMessage:
    last = request.messages[-1]
    if isinstance(last, ToolResponseMessage):
        return say(f"tool said: {content_text(last.content)}")
    text = content_text(last.content)
    offered = {tool.tool_name for tool in request.tools}
    if text.startswith("run: ") and "code_interpreter" in offered:
        return call("code_interpreter", code=text.removeprefix("run: "))
    weather = re.search(r"weather in (\w+)", text)
    if weather and "get_weather" in offered:
        return call("get_weather", city=weather.group(1))
    context = last.context if isinstance(last, UserMessage) else None
    quoted = f" | context: {content_text(context)}" if context else ""
    return say(f"echo: {text}{quoted}")


class SafetyConfig(BaseModel):
    banned_words: list[str] = ["forbidden"]


class ScriptedSafety:
    def __init__(self, config: SafetyConfig) -> None:
        self.config = config
        self.checked: list[RunShieldRequest] = []

    async def register_shield(self, shield: Shield) -> Shield:
        return shield

    async def run_shield(self, request: RunShieldRequest) -> RunShieldResponse:
        self.checked.append(request)
        text = " ".join(content_text(message.content) for message in request.messages).lower()
        for word in self.config.banned_words:
            if word in text:
                message = f"I can't discuss '{word}'."
                violation = SafetyViolation(violation_level="error", user_message=message, metadata={"word": word})
                return RunShieldResponse(violation=violation)
        return RunShieldResponse()


class ScriptedMemory:
    def __init__(self) -> None:
        self.banks: dict[str, list[Chunk]] = {}
        self.queries: list[QueryDocumentsRequest] = []

    async def register_memory_bank(self, bank: MemoryBank) -> None:
        self.banks.setdefault(bank.provider_resource_id, [])

    async def unregister_memory_bank(self, bank_id: str) -> None:
        self.banks.pop(bank_id, None)

    async def insert_documents(self, request: InsertDocumentsRequest) -> None:
        for document in request.documents:
            if not isinstance(document.content, str):
                raise InvalidRequest("the scripted memory provider takes text documents only")
            for sentence in filter(None, (s.strip() for s in document.content.split("."))):
                chunk = Chunk(content=sentence, token_count=len(sentence.split()), document_id=document.document_id)
                self.banks[request.bank_id].append(chunk)

    async def query_documents(self, request: QueryDocumentsRequest) -> QueryDocumentsResponse:
        self.queries.append(request)
        words = set(_words(content_text(request.query)))
        limit = request.params.get("max_chunks", 5)
        scored = [(len(words & set(_words(content_text(c.content)))), c) for c in self.banks[request.bank_id]]
        ranked = sorted((pair for pair in scored if pair[0] > 0), key=lambda pair: -pair[0])[: int(limit)]
        return QueryDocumentsResponse(chunks=[c for _, c in ranked], scores=[float(s) for s, _ in ranked])


def _words(text: str) -> list[str]:
    return [w for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) > 3]


class MemoryConfig(BaseModel):
    pass


async def _llm(config: LLMConfig, deps: Deps) -> ScriptedLLM:
    return ScriptedLLM(config)


async def _safety(config: SafetyConfig, deps: Deps) -> ScriptedSafety:
    return ScriptedSafety(config)


async def _memory(config: MemoryConfig, deps: Deps) -> ScriptedMemory:
    return ScriptedMemory()


def install() -> None:
    install_provider(ProviderSpec(Api.inference, LLM, LLMConfig, _llm, "scripted LLM for the agent loop"))
    install_provider(ProviderSpec(Api.safety, SAFETY, SafetyConfig, _safety, "word-list shield"))
    install_provider(ProviderSpec(Api.memory, MEMORY, MemoryConfig, _memory, "word-overlap memory"))


def run_config(
    state: Path,
    *,
    agents_store: dict[str, Any] | None = None,
    sandbox: dict[str, Any] | None = None,
    llm: dict[str, Any] | None = None,
    safety: bool = True,
    memory: bool = True,
    lease_s: float | None = None,
) -> dict[str, Any]:
    """A run config serving the scripted providers and the agents provider under test."""
    providers: dict[str, Any] = {"inference": [{"provider_id": "llm", "provider_type": LLM, "config": llm or {}}]}
    if safety:
        providers["safety"] = [{"provider_id": "guard", "provider_type": SAFETY, "config": {}}]
    if memory:
        providers["memory"] = [{"provider_id": "memory", "provider_type": MEMORY, "config": {}}]
    store = agents_store or {"type": "sqlite", "db_path": str(state / "agents.db")}
    agents_config: dict[str, Any] = {"persistence_store": store, "sandbox": sandbox or {"timeout_s": 10}}
    if lease_s is not None:
        agents_config["session_lease_s"] = lease_s
    providers["agents"] = [
        {"provider_id": "agents", "provider_type": "inline::meta-reference", "config": agents_config}
    ]
    return {
        "version": 2,
        "image_name": "agents-test",
        "providers": providers,
        "metadata_store": {"type": "sqlite", "db_path": str(state / "registry.db")},
        "models": [
            {"model_id": MODEL, "provider_id": "llm"},
            {
                "model_id": EMBEDDER,
                "provider_id": "llm",
                "model_type": "embedding",
                "metadata": {"embedding_dimension": 2},
            },
        ],
        "shields": [{"shield_id": SHIELD, "provider_id": "guard"}] if safety else [],
    }


@asynccontextmanager
async def running(config: dict[str, Any]) -> AsyncIterator[Stack]:
    stack = await build_stack(parse_run_config(config, env={}))
    try:
        yield stack
    finally:
        await stack.shutdown()


# Driving the Agents API ---------------------------------------------------------------------------


def scripted_llm(stack: Stack) -> ScriptedLLM:
    return cast(ScriptedLLM, stack.models.providers["llm"])


def scripted_safety(stack: Stack) -> ScriptedSafety:
    return cast(ScriptedSafety, stack.shields.providers["guard"])


def scripted_memory(stack: Stack) -> ScriptedMemory:
    return cast(ScriptedMemory, stack.memory_banks.providers["memory"])


async def new_session(agents: Any, **config: Any) -> tuple[str, str]:
    """A fresh agent (AgentConfig fields as keywords) and a session of it."""
    agent_config = AgentConfig.model_validate({"model": MODEL, "instructions": "You are a test agent.", **config})
    agent_id = (await agents.create_agent(CreateAgentRequest(agent_config=agent_config))).agent_id
    session = await agents.create_session(CreateSessionRequest(agent_id=agent_id, session_name="test"))
    return agent_id, session.session_id


async def run_turn(
    agents: Any, agent_id: str, session_id: str, *messages: TurnInputMessage, **options: Any
) -> list[TurnStreamChunk]:
    request = CreateTurnRequest(
        agent_id=agent_id, session_id=session_id, messages=list(messages), stream=True, **options
    )
    return [chunk async for chunk in agents.create_turn(request)]


def user(text: str) -> UserMessage:
    return UserMessage(content=text)


def final_turn(chunks: list[TurnStreamChunk]) -> Turn:
    turn = getattr(chunks[-1].event.payload, "turn", None)
    assert isinstance(turn, Turn), "the stream must end with turn_complete"
    return turn


def event_names(chunks: list[TurnStreamChunk]) -> list[str]:
    """'turn_start', 'step_start:inference', ... with consecutive duplicates folded."""
    names: list[str] = []
    for chunk in chunks:
        payload = chunk.event.payload
        step_type = getattr(payload, "step_type", None)
        name = payload.event_type + (f":{step_type.value}" if step_type is not None else "")
        if not names or names[-1] != name:
            names.append(name)
    return names


def step_types(turn: Turn) -> list[str]:
    return [step.step_type for step in turn.steps]
