"""Model scopes: the routers the faces call refuse a model outside the caller's API key (403).

Only the faces' routers are wrapped: a provider keeps the plain router it was given, because a
shield's or an agent's own inference calls are not the caller's choice of model. Installed by
resolver.build_stack only when some key is limited to some models.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

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
from llama_stack.distribution.request_context import require_model


class ScopedInference:
    """Inference that checks the model a request names against the caller's key first."""

    def __init__(self, inner: Inference) -> None:
        self.inner = inner

    async def chat_completion(self, request: ChatCompletionRequest) -> ChatCompletionResponse:
        require_model(request.model_id)
        return await self.inner.chat_completion(request)

    def chat_completion_stream(
        self, request: ChatCompletionRequest
    ) -> AsyncIterator[ChatCompletionResponseStreamChunk]:
        require_model(request.model_id)
        return self.inner.chat_completion_stream(request)

    async def completion(self, request: CompletionRequest) -> CompletionResponse:
        require_model(request.model_id)
        return await self.inner.completion(request)

    def completion_stream(self, request: CompletionRequest) -> AsyncIterator[CompletionResponseStreamChunk]:
        require_model(request.model_id)
        return self.inner.completion_stream(request)

    async def embeddings(self, request: EmbeddingsRequest) -> EmbeddingsResponse:
        require_model(request.model_id)
        return await self.inner.embeddings(request)


class ScopedAgents:
    """Agents that refuse to create an agent on a model outside the caller's key; the rest as is."""

    def __init__(self, inner: Agents) -> None:
        self.inner = inner

    async def create_agent(self, request: CreateAgentRequest) -> CreateAgentResponse:
        require_model(request.agent_config.model)
        return await self.inner.create_agent(request)

    async def delete_agent(self, agent_id: str) -> None:
        await self.inner.delete_agent(agent_id)

    async def create_session(self, request: CreateSessionRequest) -> CreateSessionResponse:
        return await self.inner.create_session(request)

    async def get_session(self, request: GetSessionRequest) -> Session:
        return await self.inner.get_session(request)

    async def delete_session(self, request: SessionRef) -> None:
        await self.inner.delete_session(request)

    def create_turn(self, request: CreateTurnRequest) -> AsyncIterator[TurnStreamChunk]:
        return self.inner.create_turn(request)

    async def get_turn(self, request: TurnRef) -> Turn:
        return await self.inner.get_turn(request)

    async def get_step(self, request: StepRef) -> GetStepResponse:
        return await self.inner.get_step(request)
