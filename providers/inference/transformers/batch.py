"""The KV cache of a decode batch whose sequences joined at different times.

Each sequence is prefilled alone (batch of one, no padding, so its prompt is computed exactly
as a single request would be), then its cache joins the batch, left-padded to a common length
with an attention mask that hides the padding. Every decode step then runs all sequences in
one forward pass. Each row's positions count only its real tokens, so a sequence sees exactly
the rotary positions it would see alone. Rows leave when they finish; padding that no row needs
any more is trimmed so the cache stays as short as its longest sequence.

Only the engine's worker thread touches a DecodeBatch.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any, Protocol

import torch
from transformers import DynamicCache


def _cache_kwarg(model: Any) -> str:
    # transformers 5 renamed `past_key_values` to `cache` (the old name warns until 5.40).
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def _new_cache(model: Any) -> DynamicCache:
    try:
        return DynamicCache(config=model.config)
    except TypeError:  # transformers before 4.56 builds its layers lazily and takes no config
        return DynamicCache()


def prefill_text(
    model: Any, device: torch.device, cache_kwarg: str, prompt: Sequence[int], model_inputs: Any = None
) -> tuple[torch.Tensor, Any]:
    """Run a text prompt alone into a fresh DynamicCache; returns its last-position logits [vocab]
    and that cache, which a batch then takes the row from. Images need a vision model's batch."""
    if model_inputs is not None:
        raise ValueError("this model takes text only")
    input_ids = torch.tensor([list(prompt)], dtype=torch.long, device=device)
    cache = _new_cache(model)
    outputs = model(
        input_ids=input_ids,
        attention_mask=torch.ones_like(input_ids),
        position_ids=torch.arange(len(prompt), device=device).unsqueeze(0),
        use_cache=True,
        logits_to_keep=1,
        **{cache_kwarg: cache},
    )
    return outputs.logits[0, -1], cache


def _layer_tensors(cache: Any) -> list[tuple[torch.Tensor, torch.Tensor]]:
    if hasattr(cache, "layers"):
        return [(layer.keys, layer.values) for layer in cache.layers]
    return list(zip(cache.key_cache, cache.value_cache, strict=True))


def _set_layer_tensors(cache: Any, tensors: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> None:
    for index, (keys, values) in enumerate(tensors):
        if hasattr(cache, "layers"):
            cache.layers[index].keys, cache.layers[index].values = keys, values
        else:
            cache.key_cache[index], cache.value_cache[index] = keys, values


def _left_pad(tensor: torch.Tensor, length: int, dim: int) -> torch.Tensor:
    missing = length - tensor.shape[dim]
    if missing <= 0:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = missing
    return torch.cat([tensor.new_zeros(shape), tensor], dim=dim)


class RowBatch(Protocol):
    """What the engine drives: prefill one row, join it, decode all rows a step, keep some.
    DecodeBatch (eager, a growing DynamicCache) and StaticDecodeBatch (fixed slots) satisfy it."""

    @property
    def device(self) -> torch.device: ...

    @property
    def size(self) -> int: ...

    def prefill(self, prompt: Sequence[int], model_inputs: Any = None) -> tuple[torch.Tensor, Any]: ...

    def join(self, row_cache: Any, length: int) -> None: ...

    def decode(self, last_tokens: Sequence[int]) -> torch.Tensor: ...

    def keep(self, rows: Sequence[int]) -> None: ...


class DecodeBatch:
    """The cache, attention mask and real lengths of the rows decoding together."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.device = next(model.parameters()).device
        self._cache_kwarg = _cache_kwarg(model)
        self.cache: Any = None
        self.mask = torch.zeros((0, 0), dtype=torch.long, device=self.device)
        self.lengths: list[int] = []  # real (unpadded) tokens of each row in the cache

    @property
    def size(self) -> int:
        return len(self.lengths)

    def prefill(self, prompt: Sequence[int], model_inputs: Any = None) -> tuple[torch.Tensor, Any]:
        """Run a prompt alone; returns its last-position logits [vocab] and its cache.
        A text model takes no `model_inputs` (images need a vision model's batch)."""
        return prefill_text(self.model, self.device, self._cache_kwarg, prompt, model_inputs)

    def join(self, row_cache: Any, length: int) -> None:
        """Append a prefilled row (its cache holds `length` tokens) as the last row."""
        if self.cache is None:
            self.cache = row_cache
            self.mask = torch.ones((1, length), dtype=torch.long, device=self.device)
            self.lengths = [length]
            return
        width = max(self.mask.shape[1], length)
        merged = [
            (
                torch.cat([_left_pad(keys, width, 2), _left_pad(row_keys, width, 2)], dim=0),
                torch.cat([_left_pad(values, width, 2), _left_pad(row_values, width, 2)], dim=0),
            )
            for (keys, values), (row_keys, row_values) in zip(
                _layer_tensors(self.cache), _layer_tensors(row_cache), strict=True
            )
        ]
        _set_layer_tensors(self.cache, merged)
        row_mask = torch.ones((1, length), dtype=torch.long, device=self.device)
        self.mask = torch.cat([_left_pad(self.mask, width, 1), _left_pad(row_mask, width, 1)], dim=0)
        self.lengths.append(length)

    def decode(self, last_tokens: Sequence[int]) -> torch.Tensor:
        """Feed each row its latest token; returns next-token logits [rows, vocab]."""
        input_ids = torch.tensor(last_tokens, dtype=torch.long, device=self.device).unsqueeze(1)
        positions = torch.tensor(self.lengths, dtype=torch.long, device=self.device).unsqueeze(1)
        self.mask = torch.cat([self.mask, torch.ones_like(input_ids)], dim=1)
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=self.mask,
            position_ids=positions,
            use_cache=True,
            **{self._cache_kwarg: self.cache},
            **self._decode_inputs(),
        )
        self.lengths = [length + 1 for length in self.lengths]
        logits: torch.Tensor = outputs.logits[:, -1]
        return logits

    def _decode_inputs(self) -> dict[str, Any]:
        """What else a decoding step passes the model (a vision model: its cross-attention mask)."""
        return {}

    def keep(self, rows: Sequence[int]) -> None:
        """Keep only `rows` (indices, in their current order), dropping the others' cache."""
        if len(rows) == self.size:
            return
        if not rows:
            self.cache = None
            self.mask = torch.zeros((0, 0), dtype=torch.long, device=self.device)
            self.lengths = []
            return
        index = torch.tensor(list(rows), dtype=torch.long, device=self.device)
        self.lengths = [self.lengths[row] for row in rows]
        # Columns left of the longest remaining row are padding in every row: drop them.
        start = self.mask.shape[1] - max(self.lengths)
        _set_layer_tensors(
            self.cache,
            [
                (keys.index_select(0, index)[:, :, start:], values.index_select(0, index)[:, :, start:])
                for keys, values in _layer_tensors(self.cache)
            ],
        )
        self.mask = self.mask.index_select(0, index)[:, start:]
