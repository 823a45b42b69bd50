"""What the in-process embedding providers (sentence-transformers, universal-sentence-encoder)
share: a model loads once when it is registered, encoding runs in a worker thread so the event
loop never waits on it, and chat and completion are refused, since these are embedding models.
A provider says only how it loads a model and how the model encodes a list of texts."""

from __future__ import annotations

import asyncio
import threading
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from llama_stack.apis.common import content_has_image, content_text
from llama_stack.apis.errors import InvalidRequest, ModelNotFound
from llama_stack.apis.inference import (
    ChatCompletionRequest,
    ChatCompletionResponse,
    ChatCompletionResponseStreamChunk,
    CompletionRequest,
    CompletionResponse,
    CompletionResponseStreamChunk,
    EmbeddingsRequest,
    EmbeddingsResponse,
)
from llama_stack.apis.models import Model, ModelType

from .loaded_models import LoadedModels


@dataclass
class LoadedEncoder:
    model: Any
    dimension: int
    # One encode at a time per model: Hugging Face fast tokenizers fail ("Already borrowed") when
    # two threads use one, and a BLAS thread limit set for one encode is restored by the other.
    lock: threading.Lock = field(default_factory=threading.Lock)


class EmbeddingOnlyInference(ABC):
    """Implements the Inference protocol (embeddings only) and ModelOwner."""

    provider_type: str  # named in the errors: "inline::sentence-transformers"

    def __init__(self) -> None:
        self._encoders = LoadedModels(self.load)

    @abstractmethod
    def load(self, model_id: str) -> LoadedEncoder:
        """The model `model_id` names, loaded (in a worker thread); InvalidRequest if there is none."""

    @abstractmethod
    def encode(self, model: Any, texts: list[str]) -> Any:
        """The vectors of `texts` as a [len(texts), dimension] numpy array (in a worker thread)."""

    async def register_model(self, model: Model) -> Model:
        if model.model_type != ModelType.embedding:
            raise InvalidRequest(
                f"{self.provider_type} serves embedding models only; register "
                f"{model.identifier} with model_type 'embedding' or on an LLM provider"
            )
        encoder = await self._encoders.register(model.identifier, model.provider_resource_id)
        metadata = {**model.metadata, "embedding_dimension": encoder.dimension}
        return model.model_copy(update={"metadata": metadata})

    async def unregister_model(self, model_id: str) -> None:
        self._encoders.unregister(model_id)

    async def shutdown(self) -> None:
        self._encoders.clear()

    async def embeddings(self, request: EmbeddingsRequest) -> EmbeddingsResponse:
        encoder = self._encoders.by_resource.get(request.model_id)
        if encoder is None:
            raise ModelNotFound(request.model_id, available=list(self._encoders.by_resource))
        if any(content_has_image(content) for content in request.contents):
            raise InvalidRequest(f"model {request.model_id} embeds text only; remove the image content")
        texts = [content_text(content) for content in request.contents]
        vectors = await asyncio.to_thread(self._encode_locked, encoder, texts)
        return EmbeddingsResponse(embeddings=vectors)

    def _encode_locked(self, encoder: LoadedEncoder, texts: list[str]) -> list[list[float]]:
        with encoder.lock:
            array = self.encode(encoder.model, texts)
        vectors: list[list[float]] = array.tolist()
        return vectors

    # --- not an LLM ---------------------------------------------------------------------------

    def _not_an_llm(self, model_id: str) -> InvalidRequest:
        return InvalidRequest(f"model {model_id} is an embedding model: it serves /embeddings, not chat or completion")

    async def chat_completion(self, request: ChatCompletionRequest) -> ChatCompletionResponse:
        raise self._not_an_llm(request.model_id)

    def chat_completion_stream(
        self, request: ChatCompletionRequest
    ) -> AsyncIterator[ChatCompletionResponseStreamChunk]:
        raise self._not_an_llm(request.model_id)

    async def completion(self, request: CompletionRequest) -> CompletionResponse:
        raise self._not_an_llm(request.model_id)

    def completion_stream(self, request: CompletionRequest) -> AsyncIterator[CompletionResponseStreamChunk]:
        raise self._not_an_llm(request.model_id)
