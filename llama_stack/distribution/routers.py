"""Routers: the API implementations the server calls. Each finds the resource a request names in
its routing table and forwards the request to the provider that owns it, with the resource id
translated to the provider's own name for it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Mapping
from typing import TypeVar

from llama_stack.apis.errors import InvalidRequest
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
from llama_stack.apis.memory import (
    DeleteDocumentsRequest,
    InsertDocumentsRequest,
    QueryDocumentsRequest,
    QueryDocumentsResponse,
)
from llama_stack.apis.memory_banks import MemoryBank, VectorMemoryBank
from llama_stack.apis.models import Model, ModelType
from llama_stack.apis.safety import RunShieldRequest, RunShieldResponse
from llama_stack.distribution.outbound import OutboundPolicy
from llama_stack.distribution.request_context import require_model
from llama_stack.distribution.routing import MemoryBanksTable, ModelsTable, ShieldsTable
from llama_stack.models.images import with_fetched_images

T = TypeVar("T")


async def relay(opening: Awaitable[AsyncIterator[T]]) -> AsyncIterator[T]:
    """The stream `opening` makes, passed on; closing the relay closes it, so a client that leaves
    stops the provider's generation behind every layer."""
    chunks = await opening
    try:
        async for chunk in chunks:
            yield chunk
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()


class InferenceRouter:
    """Routes by model to `providers` (the inference providers by id, each already wrapped by the
    call chain: see resolver.build_stack); the models table says which provider owns a model."""

    def __init__(
        self, models: ModelsTable, providers: Mapping[str, Inference], outbound: OutboundPolicy | None = None
    ) -> None:
        self.models = models
        # Its own dict: the resolver puts a provider that started in the background in its gate's place.
        self.providers: dict[str, Inference] = dict(providers)
        self.outbound = outbound or OutboundPolicy()  # image URLs are fetched here, under server.outbound

    async def _route(self, model_id: str, wanted: ModelType) -> tuple[Inference, str]:
        model: Model = await self.models.get(model_id)
        if model.model_type != wanted:
            use = "/alpha/inference/embeddings" if model.model_type == ModelType.embedding else "chat-completion"
            raise InvalidRequest(f"model '{model_id}' is an {model.model_type.value} model; use {use}")
        return self.providers[model.provider_id], model.provider_resource_id

    async def chat_completion(self, request: ChatCompletionRequest) -> ChatCompletionResponse:
        provider, name = await self._route(request.model_id, ModelType.llm)
        request = await with_fetched_images(request, self.outbound)
        return await provider.chat_completion(request.model_copy(update={"model_id": name}))

    def chat_completion_stream(
        self, request: ChatCompletionRequest
    ) -> AsyncIterator[ChatCompletionResponseStreamChunk]:
        return relay(self._open_chat_stream(request))

    async def _open_chat_stream(
        self, request: ChatCompletionRequest
    ) -> AsyncIterator[ChatCompletionResponseStreamChunk]:
        provider, name = await self._route(request.model_id, ModelType.llm)
        request = await with_fetched_images(request, self.outbound)
        return provider.chat_completion_stream(request.model_copy(update={"model_id": name}))

    async def completion(self, request: CompletionRequest) -> CompletionResponse:
        provider, name = await self._route(request.model_id, ModelType.llm)
        request = await with_fetched_images(request, self.outbound)
        return await provider.completion(request.model_copy(update={"model_id": name}))

    def completion_stream(self, request: CompletionRequest) -> AsyncIterator[CompletionResponseStreamChunk]:
        return relay(self._open_completion_stream(request))

    async def _open_completion_stream(self, request: CompletionRequest) -> AsyncIterator[CompletionResponseStreamChunk]:
        provider, name = await self._route(request.model_id, ModelType.llm)
        request = await with_fetched_images(request, self.outbound)
        return provider.completion_stream(request.model_copy(update={"model_id": name}))

    async def embeddings(self, request: EmbeddingsRequest) -> EmbeddingsResponse:
        provider, name = await self._route(request.model_id, ModelType.embedding)
        return await provider.embeddings(request.model_copy(update={"model_id": name}))


class SafetyRouter:
    def __init__(self, shields: ShieldsTable) -> None:
        self.shields = shields

    async def run_shield(self, request: RunShieldRequest) -> RunShieldResponse:
        shield = await self.shields.get(request.shield_id)
        provider = self.shields.provider_for(shield)
        update = {"shield_id": shield.provider_resource_id}
        return await provider.run_shield(request.model_copy(update=update))


class MemoryRouter:
    """Every call finds its bank through the table, so another key's bank is not found; a vector
    bank's embedding model must be one the caller's key may use, as it embeds on their behalf."""

    def __init__(self, banks: MemoryBanksTable) -> None:
        self.banks = banks

    async def _bank(self, bank_id: str) -> MemoryBank:
        bank = await self.banks.get(bank_id)
        if isinstance(bank, VectorMemoryBank):
            require_model(bank.embedding_model)
        return bank

    async def insert_documents(self, request: InsertDocumentsRequest) -> None:
        bank = await self._bank(request.bank_id)
        update = {"bank_id": bank.provider_resource_id}
        await self.banks.provider_for(bank).insert_documents(request.model_copy(update=update))

    async def query_documents(self, request: QueryDocumentsRequest) -> QueryDocumentsResponse:
        bank = await self._bank(request.bank_id)
        update = {"bank_id": bank.provider_resource_id}
        return await self.banks.provider_for(bank).query_documents(request.model_copy(update=update))

    async def delete_documents(self, request: DeleteDocumentsRequest) -> None:
        bank = await self._bank(request.bank_id)
        update = {"bank_id": bank.provider_resource_id}
        await self.banks.provider_for(bank).delete_documents(request.model_copy(update=update))
