"""A decode batch of fixed slots over a preallocated KV cache (transformers' StaticCache).

The eager DecodeBatch concatenates a new cache every step: its shapes change each step, so
nothing can be compiled or captured. Here every tensor a decode step touches has a fixed shape
[slots, capacity], so the step can be compiled once (torch.compile, with CUDA graphs on a GPU)
and replayed for every token.

Layout: all slots share one write column, `pointer` (StaticCache writes the new token's key and
value at that column for every row). A row's tokens occupy the columns just left of it; columns
further left are padding that its attention mask hides. Each row keeps its own position ids
(its real length), so it sees exactly the rotary positions it would see alone, whatever the
column. A free slot decodes a dummy token that nobody reads: a fixed shape costs less than a
changing one once the step is compiled.

A request is prefilled alone (batch of one, exact, like the eager path) and its cache copied
into a free slot, right-aligned to the pointer. When the pointer reaches the end of the cache,
the padding every row shares on the left is dropped (all rows shift left) or, when that frees
little, the cache grows (doubling, up to the context limit): a cache sized for the context
limit from the start would make every step attend over thousands of empty columns on a CPU.

Only the engine's worker thread touches a StaticDecodeBatch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from transformers import StaticCache

from .batch import _cache_kwarg, _layer_tensors, prefill_text

StepFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]

FIRST_CAPACITY = 256  # columns of the first cache; it doubles as long sequences need


class StaticDecodeBatch:
    """Rows (the engine's active sequences, in order) mapped onto the slots of a static cache."""

    def __init__(self, model: Any, *, slots: int, max_len: int, compile_step: bool = False) -> None:
        """`slots`: the most rows decoding together; `max_len`: the most tokens one row ever
        holds (prompt plus generated); `compile_step`: compile the decode step (worth it on
        CUDA, where it also captures a CUDA graph; slow to warm up and little gain on a CPU)."""
        self.model = model
        self.device = next(model.parameters()).device
        self.dtype = next(model.parameters()).dtype
        self.slots = slots
        self.max_len = max_len
        self.compile_step = compile_step
        self._cache_kwarg = _cache_kwarg(model)
        self._row_slots: list[int] = []  # the slot of each row, in the engine's row order
        self.lengths: list[int] = []  # real tokens in the cache of each row
        self.pointer = 0  # the column the next decode step writes, the same for every slot
        self.capacity = 0
        self.cache: Any = None
        self.mask = torch.zeros((slots, 0), dtype=torch.long, device=self.device)
        self._step: StepFn | None = None
        # A causal LM is a decoder and an output projection: split, the step returns hidden
        # states and only live rows are projected onto the vocabulary.
        decoder, head = model.get_decoder(), model.get_output_embeddings()
        split = decoder is not None and head is not None and decoder is not model
        self._decoder: Any = decoder if split else None
        self._head: Any = head if split else None
        self.compactions = 0
        self.growths = 0

    @property
    def size(self) -> int:
        return len(self._row_slots)

    # --- the DecodeBatch interface the engine drives -------------------------------------------

    def prefill(self, prompt: Sequence[int], model_inputs: Any = None) -> tuple[torch.Tensor, Any]:
        """Run a prompt alone (a DynamicCache, as the eager path does); returns its
        last-position logits [vocab] and its cache, which `join` copies into a slot."""
        return prefill_text(self.model, self.device, self._cache_kwarg, prompt, model_inputs)

    def join(self, row_cache: Any, length: int) -> None:
        """Copy a prefilled row (its cache holds `length` tokens) into a free slot, as the last row."""
        if length >= self.max_len:
            raise ValueError(f"a row of {length} tokens leaves no room to decode (limit {self.max_len})")
        if self.cache is None:
            self._allocate(max(FIRST_CAPACITY, length + 1), row_cache)
        if not self._row_slots:
            self.pointer = 0
        if length > self.pointer:  # the other rows shift right to make room on the left
            self._make_room(length + 1)
            self._shift(self.pointer - length)
        slot = min(set(range(self.slots)) - set(self._row_slots))
        start = self.pointer - length
        for (keys, values), (row_keys, row_values) in zip(
            _layer_tensors(self.cache), _layer_tensors(row_cache), strict=True
        ):
            keys[slot, :, start : self.pointer] = row_keys[0, :, :length]
            values[slot, :, start : self.pointer] = row_values[0, :, :length]
        self.mask[slot].zero_()
        self.mask[slot, start : self.pointer] = 1
        self._row_slots.append(slot)
        self.lengths.append(length)

    def decode(self, last_tokens: Sequence[int]) -> torch.Tensor:
        """Feed each row its latest token; returns next-token logits [rows, vocab]."""
        if self.pointer >= self.capacity:
            self._make_room(max(self.lengths) + 1)
        # Compiled, the step always runs every slot (one shape, one graph). Eager, it runs only
        # the slots up to the highest in use (free slots are taken lowest first), as views of
        # the same cache, so one stream on a CPU does not pay for eight.
        width = self.slots if self.compile_step else max(self._row_slots) + 1
        input_ids = torch.zeros((width, 1), dtype=torch.long)
        positions = torch.zeros((width, 1), dtype=torch.long)
        for row, slot in enumerate(self._row_slots):
            input_ids[slot, 0] = last_tokens[row]
            positions[slot, 0] = self.lengths[row]
        self.mask[:, self.pointer] = 1  # every slot attends to its new token (free ones too: no empty row)
        self._set_write_column(self.pointer)
        with self._rows_of_cache(width):
            hidden = self._decode_step()(input_ids.to(self.device), positions.to(self.device), self.mask[:width])
        self.pointer += 1
        self.lengths = [length + 1 for length in self.lengths]
        rows = torch.tensor(self._row_slots, dtype=torch.long, device=self.device)
        # index_select copies (a CUDA graph's output buffer is overwritten by its next replay),
        # and the vocabulary projection, the widest matmul of a small model, runs on live rows only.
        return self._project(hidden.index_select(0, rows))

    def keep(self, rows: Sequence[int]) -> None:
        """Keep only `rows` (indices, in their current order); the others' slots become free."""
        self._row_slots = [self._row_slots[row] for row in rows]
        self.lengths = [self.lengths[row] for row in rows]
        if not self._row_slots:
            self.pointer = 0

    # --- the cache ------------------------------------------------------------------------------

    def _allocate(self, capacity: int, like: Any) -> None:
        capacity = min(capacity, self.max_len)
        cache = StaticCache(config=self.model.config, max_cache_len=capacity)
        first_keys = _layer_tensors(like)[0][0]
        cache.early_initialization(
            batch_size=self.slots,
            num_heads=first_keys.shape[1],
            head_dim=first_keys.shape[-1],
            dtype=first_keys.dtype,
            device=self.device,
        )
        mask = torch.zeros((self.slots, capacity), dtype=torch.long, device=self.device)
        if self.cache is not None:  # growing: the old columns keep their place
            for (keys, values), (old_keys, old_values) in zip(
                _layer_tensors(cache), _layer_tensors(self.cache), strict=True
            ):
                keys[:, :, : self.capacity] = old_keys
                values[:, :, : self.capacity] = old_values
            mask[:, : self.capacity] = self.mask
        self.cache, self.mask, self.capacity = cache, mask, capacity
        self._step = None  # a new cache object: the compiled step re-traces for it

    def _make_room(self, needed: int) -> None:
        """Ensure the pointer column is writable and at least `needed` columns exist: drop
        shared left padding if that frees a quarter of the cache, else grow it."""
        slack = self.pointer - max(self.lengths, default=0)
        short = self.capacity < max(needed, self.pointer + 1)
        if short and self.capacity < self.max_len and (slack < self.capacity // 4 or needed > self.capacity):
            self.growths += 1
            self._allocate(max(self.capacity * 2, needed), self.cache)
        if self.pointer >= self.capacity:
            if slack <= 0:
                raise RuntimeError("the static cache is full of live tokens")
            self._shift(slack)

    def _shift(self, columns: int) -> None:
        """Move every slot's columns left (columns > 0) or right (columns < 0), pointer too."""
        if columns == 0:
            return
        self.compactions += 1
        for keys, values in _layer_tensors(self.cache):
            for tensor in (keys, values):
                moved = tensor.roll(-columns, dims=2)
                tensor.copy_(moved)
        self.mask = self.mask.roll(-columns, dims=1)
        if columns > 0:
            self.mask[:, self.capacity - columns :] = 0
        else:
            self.mask[:, :-columns] = 0
        self.pointer -= columns

    def _set_write_column(self, column: int) -> None:
        for layer in self.cache.layers:
            layer.cumulative_length.fill_(column)

    def _decode_step(self) -> StepFn:
        if self._step is None:
            self._step = self._build_step()
        return self._step

    @contextlib.contextmanager
    def _rows_of_cache(self, width: int) -> Iterator[None]:
        """While decoding `width` < slots rows, each layer holds views of its first rows: the
        StaticCache writes through them into the full tensors."""
        if width == self.slots:
            yield
            return
        full = [(layer.keys, layer.values) for layer in self.cache.layers]
        try:
            for layer, (keys, values) in zip(self.cache.layers, full, strict=True):
                layer.keys, layer.values = keys[:width], values[:width]
            yield
        finally:
            for layer, (keys, values) in zip(self.cache.layers, full, strict=True):
                layer.keys, layer.values = keys, values

    def _project(self, hidden: torch.Tensor) -> torch.Tensor:
        """Logits [rows, vocab] from the step's output: hidden states when the model splits
        into a decoder and an output projection, else already logits."""
        if self._head is None:
            return hidden
        logits: torch.Tensor = self._head(hidden)
        return logits

    def _build_step(self) -> StepFn:
        cache, cache_kwarg = self.cache, self._cache_kwarg
        decoder = self._decoder or self.model

        def step(input_ids: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            outputs = decoder(
                input_ids=input_ids,
                attention_mask=mask,
                position_ids=positions,
                use_cache=True,
                **{cache_kwarg: cache},
            )
            last: torch.Tensor = (outputs.last_hidden_state if self._head is not None else outputs.logits)[:, -1]
            return last

        if not self.compile_step:
            return step
        # reduce-overhead: CUDA graphs on a GPU, so one step is one graph replay, not hundreds
        # of kernel launches; the cache's tensors have static addresses (StaticCache marks them).
        compiled: StepFn = torch.compile(step, mode="reduce-overhead", fullgraph=False)
        return compiled
