"""Choosing the next token of each sequence in a batch, each with its own sampling parameters.

The logits transforms are transformers' own processors and warpers, applied per sequence since
sequences in one decode batch ask for different temperatures, penalties and seeds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, cast

import torch
from transformers import (
    LogitsProcessorList,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from llama_stack.apis.common import SamplingParams, SamplingStrategy


@dataclass(frozen=True)
class SamplingConfig:
    """Sampling normalised from the wire's SamplingParams: temperature 0 means greedy."""

    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    repetition_penalty: float = 1.0

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0

    @classmethod
    def from_params(cls, params: SamplingParams) -> SamplingConfig:
        penalty = params.repetition_penalty or 1.0
        temperature = params.temperature or 0.0
        if params.strategy == SamplingStrategy.greedy or temperature <= 0.0:
            return cls(repetition_penalty=penalty)
        # The strategy names the truncation the client asked for; the other one stays off, as
        # SamplingParams fills both with defaults (top_p 0.95) whatever the strategy.
        if params.strategy == SamplingStrategy.top_k:
            return cls(temperature=temperature, top_k=params.top_k or 0, repetition_penalty=penalty)
        return cls(
            temperature=temperature,
            top_p=params.top_p or 1.0,
            top_k=params.top_k or 0,
            repetition_penalty=penalty,
        )


class TokenConstraint(Protocol):
    """Which tokens may come next (constrained decoding, e.g. a JSON schema)."""

    def allowed(self, history: Sequence[int], width: int, device: torch.device) -> torch.Tensor:
        """A bool mask [width] of the tokens allowed after `history` (prompt and generated)."""
        ...


class TokenSampler:
    """Picks the next token of one sequence. Holds that sequence's random generator, so its
    draws do not depend on which other sequences share the batch."""

    def __init__(
        self,
        config: SamplingConfig,
        *,
        seed: int | None,
        device: torch.device,
        constraint: TokenConstraint | None = None,
    ) -> None:
        self.config = config
        self.constraint = constraint
        self._processors = LogitsProcessorList()
        if config.repetition_penalty != 1.0:
            self._processors.append(RepetitionPenaltyLogitsProcessor(float(config.repetition_penalty)))
        if not config.greedy:
            self._processors.append(TemperatureLogitsWarper(float(config.temperature)))
            if config.top_k > 0:
                self._processors.append(TopKLogitsWarper(top_k=config.top_k))
            if config.top_p < 1.0:
                self._processors.append(TopPLogitsWarper(top_p=float(config.top_p)))
        self._generator: torch.Generator | None = None
        if not config.greedy:
            self._generator = torch.Generator(device=device)
            if seed is None:
                self._generator.seed()
            else:
                self._generator.manual_seed(seed)

    @property
    def is_plain_argmax(self) -> bool:
        """True when the next token is just the argmax of the raw logits (no history needed)."""
        return self.config.greedy and len(self._processors) == 0 and self.constraint is None

    def pick(self, logits: torch.Tensor, history: Sequence[int]) -> int:
        """The next token given this sequence's last-position logits [vocab] and all its
        tokens so far (prompt and generated: the repetition penalty reads both)."""
        scores = logits.float().unsqueeze(0)
        if self.constraint is not None:  # first, so top-p / top-k choose among allowed tokens
            allowed = self.constraint.allowed(history, scores.shape[-1], scores.device)
            scores = scores.masked_fill(~allowed.unsqueeze(0), float("-inf"))
        if len(self._processors) > 0:
            ids = torch.tensor([list(history)], dtype=torch.long, device=logits.device)
            scores = self._processors(cast(torch.LongTensor, ids), scores)
        if self.config.greedy:
            return int(scores.argmax(dim=-1).item())
        probs = torch.softmax(scores, dim=-1)
        return int(torch.multinomial(probs, num_samples=1, generator=self._generator).item())


def pick_tokens(
    logits: torch.Tensor, samplers: Sequence[TokenSampler], histories: Sequence[Sequence[int]]
) -> list[int]:
    """The next token of every row of a batch's last-position logits [batch, vocab].

    Plain greedy rows share one batched argmax; only rows with processors or sampling go
    through their sampler one by one.
    """
    argmax = logits.argmax(dim=-1).tolist()
    return [
        int(argmax[row]) if sampler.is_plain_argmax else sampler.pick(logits[row], histories[row])
        for row, sampler in enumerate(samplers)
    ]


def top_logprobs(logits: torch.Tensor, k: int) -> tuple[tuple[int, float], ...]:
    """The `k` most likely next tokens of one row's logits [vocab] with their log-probabilities
    under the model's own distribution (before temperature, penalties or constraints)."""
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    values, indices = torch.topk(logprobs, k)
    return tuple((int(i), float(v)) for i, v in zip(indices.tolist(), values.tolist(), strict=True))
