"""Continuous batching: one worker thread decodes every running request of a model together.

Requests arrive from the event loop (`submit`) and wait in a queue. Between two decode steps
the worker admits waiting requests (prefill, first token, join the batch), then runs one
forward pass for all active sequences and hands each its next token. Tokens travel back to the
event loop through each request's asyncio queue, so the loop never blocks on the model.

A consumer that stops listening (aclose, task cancelled: what a client disconnect does) sets
its stream's cancel flag; the worker drops that row before the next step, freeing its slot.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from llama_stack.apis.common import StopReason
from llama_stack.apis.errors import ProviderError
from llama_stack.models.chat_format import StopTokens

from .batch import DecodeBatch, RowBatch
from .sampling import SamplingConfig, TokenConstraint, TokenSampler, pick_tokens, top_logprobs

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GenerationRequest:
    prompt_tokens: Sequence[int]
    max_new_tokens: int  # >= 1; the caller has already fitted it into the context
    sampling: SamplingConfig
    stop_tokens: StopTokens
    seed: int | None = None
    logprobs_top_k: int = 0  # > 0: each TokenEvent carries the k most likely tokens' logprobs
    constraint: TokenConstraint | None = None  # constrained decoding (response_format)
    model_inputs: Any = None  # extra prefill inputs for the model's DecodeBatch (images)


@dataclass(frozen=True)
class TokenEvent:
    token_id: int
    top_logprobs: tuple[tuple[int, float], ...] | None = None  # (token id, logprob), best first


@dataclass(frozen=True)
class FinishEvent:
    stop_reason: StopReason
    generated_tokens: int


EngineEvent = TokenEvent | FinishEvent


@dataclass(frozen=True)
class EngineStats:
    active: int  # sequences in the decode batch (a cancelled one until the worker drops it)
    waiting: int  # submitted, not yet admitted
    decode_steps: int  # forward passes over the batch since start
    generated_tokens: int  # tokens sampled since start (a final stop token included)
    largest_batch: int  # most sequences ever decoded in one step


class GenerationStream:
    """One request's events, produced on the worker thread, consumed on the event loop."""

    def __init__(self, request: GenerationRequest, loop: asyncio.AbstractEventLoop) -> None:
        self.request = request
        self._loop = loop
        self._events: asyncio.Queue[EngineEvent | BaseException] = asyncio.Queue()
        self._cancelled = threading.Event()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def cancel(self) -> None:
        self._cancelled.set()

    def emit(self, event: EngineEvent | BaseException) -> None:
        """Worker side: hand an event to the consumer's loop (thread-safe)."""
        try:
            self._loop.call_soon_threadsafe(self._events.put_nowait, event)
        except RuntimeError:  # the consumer's loop is closed: nobody will ever read this
            self.cancel()

    async def events(self) -> AsyncIterator[EngineEvent]:
        """Token events, then one FinishEvent. Leaving early cancels the generation."""
        try:
            while True:
                event = await self._events.get()
                if isinstance(event, BaseException):
                    raise event
                yield event
                if isinstance(event, FinishEvent):
                    return
        finally:
            self.cancel()


class _Sequence:
    """A request being decoded: all its tokens so far and its own sampler."""

    def __init__(self, stream: GenerationStream, device: torch.device) -> None:
        self.stream = stream
        self.request = stream.request
        self.tokens = list(self.request.prompt_tokens)
        self.generated = 0
        self.finished = False
        self.sampler = TokenSampler(
            self.request.sampling, seed=self.request.seed, device=device, constraint=self.request.constraint
        )

    def accept(self, token_id: int, logits: torch.Tensor) -> None:
        """Record the sampled token (`logits`: the row it was picked from): emit it, or finish
        on a stop token or the token limit."""
        stop_reason = self.request.stop_tokens.reason(token_id)
        if stop_reason is None:
            self.tokens.append(token_id)
            self.generated += 1
            k = self.request.logprobs_top_k
            self.stream.emit(TokenEvent(token_id, top_logprobs(logits, k) if k > 0 else None))
            if self.generated >= self.request.max_new_tokens:
                stop_reason = StopReason.out_of_tokens
        if stop_reason is not None:
            self.finished = True
            self.stream.emit(FinishEvent(stop_reason, self.generated))


class GenerationEngine:
    def __init__(
        self,
        model: Any,
        *,
        name: str,
        max_batch_size: int = 8,
        prefill_token_budget: int = 2048,
        batch: RowBatch | None = None,
    ) -> None:
        """`batch`: how rows decode together (default: the eager DecodeBatch); the static-cache
        batch, or the model's own when it is not a plain causal LM (e.g. vision)."""
        self.name = name
        self.max_batch_size = max_batch_size
        self.prefill_token_budget = prefill_token_budget
        self._batch: RowBatch = batch or DecodeBatch(model)
        self._active: list[_Sequence] = []  # row i of the batch is self._active[i]
        self._waiting: deque[GenerationStream] = deque()
        self._wakeup = threading.Condition()
        self._closing = False
        self._steps = 0
        self._generated = 0
        self._largest_batch = 0
        self._thread = threading.Thread(target=self._run, name=f"generate-{name}", daemon=True)
        self._thread.start()

    @property
    def batch(self) -> RowBatch:
        """How this engine's rows decode together (eager or static): for tests and benchmarks."""
        return self._batch

    def submit(self, request: GenerationRequest) -> GenerationStream:
        """Queue a request; call from the event loop that will consume its events."""
        stream = GenerationStream(request, asyncio.get_running_loop())
        with self._wakeup:
            if self._closing:
                raise ProviderError(f"model {self.name} is shutting down")
            self._waiting.append(stream)
            self._wakeup.notify()
        return stream

    def stats(self) -> EngineStats:
        with self._wakeup:
            return EngineStats(
                active=sum(1 for seq in self._active if not seq.finished),  # cancelled: until dropped
                waiting=len(self._waiting),
                decode_steps=self._steps,
                generated_tokens=self._generated,
                largest_batch=self._largest_batch,
            )

    def close(self, timeout: float = 30.0) -> None:
        """Stop the worker; requests still running end with a ProviderError."""
        with self._wakeup:
            self._closing = True
            self._wakeup.notify()
        self._thread.join(timeout)

    # --- worker thread ------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._loop()
        finally:
            self._fail_all(ProviderError(f"model {self.name} was unloaded while generating"))

    def _loop(self) -> None:
        with torch.inference_mode():
            while True:
                with self._wakeup:
                    while not self._closing and not self._waiting and not self._active:
                        self._wakeup.wait()
                    if self._closing:
                        break
                    admitted = self._take_waiting()
                for stream in admitted:
                    self._admit(stream)
                self._drop_done()
                if not self._active:
                    continue
                try:
                    self._decode_step()
                except Exception as exc:  # a model failure must not kill the worker silently
                    log.exception("decode step failed for model %s", self.name)
                    self._fail_active(ProviderError(f"generation failed on model {self.name}: {exc}"))
                self._drop_done()

    def _take_waiting(self) -> list[GenerationStream]:
        """Requests to admit now: as many as free slots and the prefill budget allow, and at
        least one, so a prompt longer than the budget still gets its turn."""
        admitted: list[GenerationStream] = []
        budget = self.prefill_token_budget
        while self._waiting and len(self._active) + len(admitted) < self.max_batch_size:
            stream = self._waiting[0]
            if stream.cancelled:
                self._waiting.popleft()
                continue
            cost = len(stream.request.prompt_tokens)
            if admitted and cost > budget:
                break
            admitted.append(self._waiting.popleft())
            budget -= cost
        return admitted

    def _admit(self, stream: GenerationStream) -> None:
        if stream.cancelled:
            return
        sequence = _Sequence(stream, self._batch.device)
        try:
            logits, cache = self._batch.prefill(sequence.tokens, sequence.request.model_inputs)
            token_id = pick_tokens(logits.unsqueeze(0), [sequence.sampler], [sequence.tokens])[0]
            self._count_generated(1)
            sequence.accept(token_id, logits)
            if not sequence.finished:
                self._batch.join(cache, len(sequence.tokens) - 1)
        except Exception as exc:  # only this request fails: the batch is left as it was
            log.exception("prefill failed for model %s", self.name)
            stream.emit(ProviderError(f"generation failed on model {self.name}: {exc}"))
            return
        if not sequence.finished:
            self._active.append(sequence)

    def _decode_step(self) -> None:
        logits = self._batch.decode([sequence.tokens[-1] for sequence in self._active])
        next_tokens = pick_tokens(
            logits,
            [sequence.sampler for sequence in self._active],
            [sequence.tokens for sequence in self._active],
        )
        with self._wakeup:  # counted before the tokens go out, so a consumer sees its tokens counted
            self._steps += 1
            self._generated += len(next_tokens)
            self._largest_batch = max(self._largest_batch, len(next_tokens))
        for row, (sequence, token_id) in enumerate(zip(self._active, next_tokens, strict=True)):
            sequence.accept(token_id, logits[row])

    def _drop_done(self) -> None:
        keep = [
            row for row, sequence in enumerate(self._active) if not sequence.finished and not sequence.stream.cancelled
        ]
        if len(keep) != len(self._active):
            self._batch.keep(keep)
            with self._wakeup:
                self._active = [self._active[row] for row in keep]

    def _count_generated(self, count: int) -> None:
        with self._wakeup:
            self._generated += count

    def _fail_active(self, error: ProviderError) -> None:
        with self._wakeup:
            streams = [sequence.stream for sequence in self._active]
            self._active = []
        self._batch.keep([])
        for stream in streams:
            stream.emit(error)

    def _fail_all(self, error: ProviderError) -> None:
        self._fail_active(error)
        with self._wakeup:
            streams = list(self._waiting)
            self._waiting.clear()
        for stream in streams:
            stream.emit(error)
