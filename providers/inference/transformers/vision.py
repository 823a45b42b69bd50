"""Llama 3.2 Vision (MllamaForConditionalGeneration): image inputs and a one-row decode batch.

Images reach the model as llama-models' chat format lays them out (the <|image|> token, id
128256, where each image stands) and through transformers' own Mllama image processor (tiles,
aspect-ratio ids), loaded from the checkpoint's preprocessor_config.json or, when a checkpoint
has none, built from its vision config.

Vision models decode one request at a time (requests queue in the engine): a cross-attention
cache holds each request's own image states, and merging those across rows is not done here.
Text models keep continuous batching.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from llama_stack.apis.errors import InvalidRequest, ProviderError

from .batch import DecodeBatch, _new_cache
from .weights import dtype_kwargs

log = logging.getLogger(__name__)

IMAGE_TOKEN_ID = 128256


def is_vision_checkpoint(path: Path) -> bool:
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return bool(config.get("model_type") == "mllama")


def load_vision_model(path: Path, device: str, dtype: Any) -> Any:
    from transformers import MllamaForConditionalGeneration

    try:
        model: Any = MllamaForConditionalGeneration.from_pretrained(
            str(path), local_files_only=True, **dtype_kwargs(dtype)
        )
    except (OSError, ValueError) as exc:
        raise ProviderError(f"could not load the vision checkpoint at {path}: {exc}") from exc
    model.to(device)
    model.eval()
    log.info("loaded %s (%s) on %s as %s", path, type(model).__name__, device, dtype)
    return model


def load_image_processor(path: Path, model: Any) -> Any:
    """transformers' Mllama image processor (the implementation that needs no torchvision)."""
    from llama_stack.models.tiny_vision import mllama_image_processor_class

    processor_class = mllama_image_processor_class()
    if (path / "preprocessor_config.json").is_file():
        return processor_class.from_pretrained(str(path), local_files_only=True)
    vision = model.config.vision_config
    return processor_class(
        size={"height": vision.image_size, "width": vision.image_size}, max_image_tiles=vision.max_num_tiles
    )


@dataclass(frozen=True)
class VisionInputs:
    """What a prompt's images add to its prefill."""

    pixel_values: torch.Tensor
    aspect_ratio_ids: torch.Tensor
    aspect_ratio_mask: torch.Tensor
    cross_attention_mask: torch.Tensor  # [1, prompt tokens, images, tiles]


def vision_inputs(processor: Any, tokens: list[int], images: list[Image.Image]) -> VisionInputs | None:
    """The processed images of one prompt (None for a prompt without images)."""
    if not images:
        return None
    from transformers.models.mllama.processing_mllama import (
        convert_sparse_cross_attention_mask_to_dense,
        get_cross_attention_token_mask,
    )

    try:
        features = processor(images=[images], return_tensors="pt")
    except Exception as exc:  # a corrupt or unsupported image: the client's to fix
        raise InvalidRequest(f"could not process the image: {exc}") from exc
    sparse = get_cross_attention_token_mask(tokens, IMAGE_TOKEN_ID)
    dense = convert_sparse_cross_attention_mask_to_dense(
        [sparse], features["num_tiles"], processor.max_image_tiles, len(tokens)
    )
    return VisionInputs(
        pixel_values=features["pixel_values"],
        aspect_ratio_ids=features["aspect_ratio_ids"],
        aspect_ratio_mask=features["aspect_ratio_mask"],
        cross_attention_mask=torch.as_tensor(dense),
    )


class VisionDecodeBatch(DecodeBatch):
    """A DecodeBatch of one row for Mllama: the prefill runs the vision encoder and fills the
    cross-attention cache; each decode step passes the cross-attention mask row of the prompt's
    last token, as transformers' own generate does."""

    def __init__(self, model: Any) -> None:
        super().__init__(model)
        self._cross_mask: torch.Tensor | None = None  # of the row decoding now
        self._pending_cross_mask: torch.Tensor | None = None  # of the row prefilled last

    def prefill(self, prompt: Any, model_inputs: Any = None) -> tuple[torch.Tensor, Any]:
        input_ids = torch.tensor([list(prompt)], dtype=torch.long, device=self.device)
        cache = _new_cache(self.model)
        extra: dict[str, Any] = {}
        cross_mask = None
        if isinstance(model_inputs, VisionInputs):
            dtype = next(self.model.parameters()).dtype
            cross_mask = model_inputs.cross_attention_mask.to(self.device)
            extra = {
                "pixel_values": model_inputs.pixel_values.to(self.device, dtype),
                "aspect_ratio_ids": model_inputs.aspect_ratio_ids.to(self.device),
                "aspect_ratio_mask": model_inputs.aspect_ratio_mask.to(self.device),
                "cross_attention_mask": cross_mask,
            }
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            position_ids=torch.arange(len(prompt), device=self.device).unsqueeze(0),
            use_cache=True,
            logits_to_keep=1,
            **{self._cache_kwarg: cache},
            **extra,
        )
        self._pending_cross_mask = None if cross_mask is None else cross_mask[:, -1:]
        return outputs.logits[0, -1], cache

    def join(self, row_cache: Any, length: int) -> None:
        if self.size >= 1:
            raise ProviderError("a vision model decodes one request at a time")
        super().join(row_cache, length)
        self._cross_mask = self._pending_cross_mask

    def _decode_inputs(self) -> dict[str, Any]:
        return {} if self._cross_mask is None else {"cross_attention_mask": self._cross_mask}

    def keep(self, rows: Any) -> None:
        super().keep(rows)
        if self.size == 0:
            self._cross_mask = None
