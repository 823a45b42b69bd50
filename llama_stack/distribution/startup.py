"""Providers started in the background, so the server answers while a provider loads its models.

The resolver puts a gate where each such provider goes (the routers' and routing tables' maps of
providers). A gate satisfies its API's Protocol: a call waits until the provider is ready, or
fails at once with the reason it did not start. Once the provider is ready, the resolver puts
the provider itself where the gate was, so a request then meets no gate at all.

Resources the stack registers while it builds (from the run config, or persisted by an earlier
run) reach a gate before its provider exists: the gate takes them as given and hands them to the
provider when it starts; what the provider makes of them (an embedding dimension, a context
length) then replaces the given resource in its table.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from enum import StrEnum
from typing import Any, Generic, TypeVar

from llama_stack.apis.agents import (
    Agents,
    CreateAgentRequest,
    CreateAgentResponse,
    CreateSessionRequest,
    CreateSessionResponse,
    CreateTurnRequest,
    GetSessionRequest,
    GetStepResponse,
    Session,
    SessionRef,
    StepRef,
    Turn,
    TurnRef,
    TurnStreamChunk,
)
from llama_stack.apis.common import WireModel
from llama_stack.apis.errors import ProviderError, StackError
from llama_stack.apis.inference import (
    ChatCompletionRequest,
    ChatCompletionResponse,
    ChatCompletionResponseStreamChunk,
    CompletionRequest,
    CompletionResponse,
    CompletionResponseStreamChunk,
    EmbeddingsRequest,
    EmbeddingsResponse,
    Inference,
)
from llama_stack.apis.inspect import HealthInfo
from llama_stack.apis.memory import (
    DeleteDocumentsRequest,
    InsertDocumentsRequest,
    Memory,
    QueryDocumentsRequest,
    QueryDocumentsResponse,
)
from llama_stack.apis.memory_banks import MemoryBank
from llama_stack.apis.models import Model
from llama_stack.apis.resource import Resource
from llama_stack.apis.safety import RunShieldRequest, RunShieldResponse, Safety
from llama_stack.apis.shields import Shield
from llama_stack.distribution.routing import RoutingTable

ImplT = TypeVar("ImplT")
R = TypeVar("R", bound=Resource)


class Readiness(StrEnum):
    starting = "starting"
    ready = "ready"
    failed = "failed"


class ProviderHealth(WireModel):
    api: str
    provider_id: str
    provider_type: str
    status: Readiness
    error: str | None = None


class HealthReport(HealthInfo):
    """/alpha/health: `status` is "OK" while every provider is ready or still starting (requests
    for one still starting wait for it), "Error" once one has failed to start; `ready` says
    whether every provider has started, `providers` how each one stands."""

    status: str = "OK"
    ready: bool
    providers: list[ProviderHealth]


class ProviderStartup(Generic[ImplT]):
    """How one provider's start stands, and the provider once it is ready."""

    def __init__(self, api: str, provider_id: str, provider_type: str) -> None:
        self.api, self.provider_id, self.provider_type = api, provider_id, provider_type
        self.status = Readiness.starting
        self.error: str | None = None
        self.impl: ImplT | None = None
        self.task: asyncio.Task[None] | None = None
        # While the stack builds, gates take resources as given and keep them here for the provider.
        self.deferring = True
        self.pending: list[tuple[RoutingTable[Any, Any], Resource]] = []
        self._done = asyncio.Event()

    @classmethod
    def started(cls, api: str, provider_id: str, provider_type: str, impl: ImplT) -> ProviderStartup[ImplT]:
        startup: ProviderStartup[ImplT] = cls(api, provider_id, provider_type)
        startup.succeed(impl)
        return startup

    async def ready(self) -> ImplT:
        if self.impl is None:
            await self._done.wait()
            if self.impl is None:
                raise ProviderError(
                    f"provider '{self.provider_id}' ({self.provider_type}) failed to start: {self.error}"
                )
        return self.impl

    def succeed(self, impl: ImplT) -> None:
        self.impl, self.status, self.deferring = impl, Readiness.ready, False
        self._done.set()

    def fail(self, reason: str) -> None:
        self.error, self.status, self.deferring = reason, Readiness.failed, False
        self._done.set()

    async def hand_over_pending(self, impl: ImplT) -> None:
        """Give the provider the resources its gate took while the stack was built; each table
        then holds what the provider accepted. A refusal fails the provider's start."""
        for table, resource in self.pending:
            hook = getattr(impl, table.hook, None)
            if hook is None:
                continue
            try:
                accepted = await hook(resource)
            except StackError as e:
                raise StackError(f"{table.kind} '{resource.identifier}': {e.message}") from e
            # Unless a client unregistered or replaced it meanwhile, the accepted one takes its place.
            if isinstance(accepted, type(resource)) and table.resources.get(resource.identifier) is resource:
                table.resources[resource.identifier] = accepted
                await table.store.set(table.key(resource.identifier), accepted.model_dump_json())
        self.pending.clear()

    def health(self) -> ProviderHealth:
        return ProviderHealth(
            api=self.api,
            provider_id=self.provider_id,
            provider_type=self.provider_type,
            status=self.status,
            error=self.error,
        )


class _Gate(Generic[ImplT]):
    """What the gates of every API share: the routing-table hooks (register_*/unregister_*)."""

    def __init__(self, startup: ProviderStartup[ImplT], table: RoutingTable[Any, Any]) -> None:
        self.startup = startup
        self.table = table

    async def _attach(self, resource: R) -> R:
        if self.startup.deferring:
            self.startup.pending.append((self.table, resource))
            return resource
        impl = await self.startup.ready()
        hook = getattr(impl, self.table.hook, None)
        if hook is None:
            return resource
        accepted = await hook(resource)
        return accepted if isinstance(accepted, type(resource)) else resource

    async def _detach(self, identifier: str) -> None:
        impl = await self.startup.ready()
        unhook = getattr(impl, self.table.unhook, None)
        if unhook is not None:
            await unhook(identifier)


class StartingInference(_Gate[Inference]):
    async def register_model(self, model: Model) -> Model:
        return await self._attach(model)

    async def unregister_model(self, model_id: str) -> None:
        await self._detach(model_id)

    async def chat_completion(self, request: ChatCompletionRequest) -> ChatCompletionResponse:
        return await (await self.startup.ready()).chat_completion(request)

    async def chat_completion_stream(
        self, request: ChatCompletionRequest
    ) -> AsyncIterator[ChatCompletionResponseStreamChunk]:
        # The wait happens at the first chunk, which sse_response awaits before sending headers,
        # so a provider that failed to start still answers with its status code.
        stream = (await self.startup.ready()).chat_completion_stream(request)
        try:
            async for chunk in stream:
                yield chunk
        finally:
            await _close(stream)

    async def completion(self, request: CompletionRequest) -> CompletionResponse:
        return await (await self.startup.ready()).completion(request)

    async def completion_stream(self, request: CompletionRequest) -> AsyncIterator[CompletionResponseStreamChunk]:
        stream = (await self.startup.ready()).completion_stream(request)
        try:
            async for chunk in stream:
                yield chunk
        finally:
            await _close(stream)

    async def embeddings(self, request: EmbeddingsRequest) -> EmbeddingsResponse:
        return await (await self.startup.ready()).embeddings(request)


class StartingSafety(_Gate[Safety]):
    async def register_shield(self, shield: Shield) -> Shield:
        return await self._attach(shield)

    async def unregister_shield(self, shield_id: str) -> None:
        await self._detach(shield_id)

    async def run_shield(self, request: RunShieldRequest) -> RunShieldResponse:
        return await (await self.startup.ready()).run_shield(request)


class StartingMemory(_Gate[Memory]):
    async def register_memory_bank(self, bank: MemoryBank) -> MemoryBank:
        return await self._attach(bank)

    async def unregister_memory_bank(self, memory_bank_id: str) -> None:
        await self._detach(memory_bank_id)

    async def insert_documents(self, request: InsertDocumentsRequest) -> None:
        await (await self.startup.ready()).insert_documents(request)

    async def query_documents(self, request: QueryDocumentsRequest) -> QueryDocumentsResponse:
        return await (await self.startup.ready()).query_documents(request)

    async def delete_documents(self, request: DeleteDocumentsRequest) -> None:
        await (await self.startup.ready()).delete_documents(request)


class StartingAgents:
    """Agents have no routing table: the resolver puts the provider in the routers' and faces'
    place of this gate once it is ready."""

    def __init__(self, startup: ProviderStartup[Agents]) -> None:
        self.startup = startup

    async def create_agent(self, request: CreateAgentRequest) -> CreateAgentResponse:
        return await (await self.startup.ready()).create_agent(request)

    async def delete_agent(self, agent_id: str) -> None:
        await (await self.startup.ready()).delete_agent(agent_id)

    async def create_session(self, request: CreateSessionRequest) -> CreateSessionResponse:
        return await (await self.startup.ready()).create_session(request)

    async def get_session(self, request: GetSessionRequest) -> Session:
        return await (await self.startup.ready()).get_session(request)

    async def delete_session(self, request: SessionRef) -> None:
        await (await self.startup.ready()).delete_session(request)

    async def create_turn(self, request: CreateTurnRequest) -> AsyncIterator[TurnStreamChunk]:
        stream = (await self.startup.ready()).create_turn(request)
        try:
            async for chunk in stream:
                yield chunk
        finally:
            await _close(stream)

    async def get_turn(self, request: TurnRef) -> Turn:
        return await (await self.startup.ready()).get_turn(request)

    async def get_step(self, request: StepRef) -> GetStepResponse:
        return await (await self.startup.ready()).get_step(request)


async def _close(stream: AsyncIterator[Any]) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()
