"""The inline::transformers Inference provider: Llama 3.x text models run in-process.

Each registered model is loaded once and gets its own GenerationEngine (a worker thread that
batches that model's concurrent requests). This module turns API requests into token prompts
with the Llama 3 chat format, and the engine's token events back into API chunks.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from llama_stack.apis.common import CompletionMessage, SamplingParams, StopReason
from llama_stack.apis.errors import InvalidRequest, ModelNotFound, NotImplementedYet
from llama_stack.apis.inference import (
    ChatCompletionEventType,
    ChatCompletionRequest,
    ChatCompletionResponse,
    ChatCompletionResponseEvent,
    ChatCompletionResponseStreamChunk,
    CompletionRequest,
    CompletionResponse,
    CompletionResponseStreamChunk,
    EmbeddingsRequest,
    EmbeddingsResponse,
)
from llama_stack.apis.models import Model, ModelType
from llama_stack.models.chat_format import (
    StreamDecoder,
    encode_completion,
    encode_dialog,
    llama3_stop_tokens,
)

from .config import TransformersInferenceConfig
from .engine import FinishEvent, GenerationEngine, GenerationRequest, TokenEvent
from .sampling import SamplingConfig
from .weights import load_causal_lm, pick_device, pick_dtype, resolve_weights

log = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    resource_id: str
    path: Path
    context_length: int
    engine: GenerationEngine
    load_seconds: float


class TransformersInference:
    """Implements the Inference protocol and ModelOwner (register_model / unregister_model)."""

    def __init__(self, config: TransformersInferenceConfig) -> None:
        self.config = config
        self._models: dict[str, LoadedModel] = {}  # by provider_resource_id
        self._identifiers: dict[str, str] = {}  # registered identifier -> provider_resource_id
        self._load_lock = asyncio.Lock()

    # --- models -------------------------------------------------------------------------------

    async def register_model(self, model: Model) -> Model:
        if model.model_type != ModelType.llm:
            raise InvalidRequest(
                f"inline::transformers serves LLMs only; model {model.identifier} is an "
                f"{model.model_type.value} model (use inline::sentence-transformers for embeddings)"
            )
        resource_id = model.provider_resource_id
        async with self._load_lock:
            loaded = self._models.get(resource_id)
            if loaded is None:
                loaded = await asyncio.to_thread(self._load, resource_id)
                self._models[resource_id] = loaded
        self._identifiers[model.identifier] = resource_id
        metadata = {**model.metadata, "context_length": loaded.context_length}
        return model.model_copy(update={"metadata": metadata})

    async def unregister_model(self, model_id: str) -> None:
        resource_id = self._identifiers.pop(model_id, None)
        if resource_id is None and model_id in self._models:
            resource_id = model_id
            self._identifiers = {k: v for k, v in self._identifiers.items() if v != model_id}
        if resource_id is None or resource_id in self._identifiers.values():
            return  # unknown, or another registered identifier still uses these weights
        loaded = self._models.pop(resource_id, None)
        if loaded is not None:
            await asyncio.to_thread(loaded.engine.close)

    async def shutdown(self) -> None:
        models, self._models = list(self._models.values()), {}
        self._identifiers.clear()
        for loaded in models:
            await asyncio.to_thread(loaded.engine.close)

    def loaded_model(self, resource_id: str) -> LoadedModel:
        loaded = self._models.get(resource_id)
        if loaded is None:
            raise ModelNotFound(resource_id, available=list(self._models))
        return loaded

    def _load(self, resource_id: str) -> LoadedModel:
        started = time.perf_counter()
        weights = resolve_weights(resource_id, self.config)
        device = pick_device(self.config.device)
        model = load_causal_lm(weights.path, device, pick_dtype(self.config.dtype, device))
        model_limit = getattr(model.config, "max_position_embeddings", None) or self.config.max_seq_len
        engine = GenerationEngine(
            model,
            name=resource_id,
            max_batch_size=self.config.max_batch_size,
            prefill_token_budget=self.config.max_prompt_tokens_per_step,
        )
        seconds = time.perf_counter() - started
        log.info("model %s ready from %s (%s) in %.1fs", resource_id, weights.path, weights.source, seconds)
        return LoadedModel(
            resource_id=resource_id,
            path=weights.path,
            context_length=min(self.config.max_seq_len, int(model_limit)),
            engine=engine,
            load_seconds=seconds,
        )

    # --- inference ----------------------------------------------------------------------------

    async def chat_completion(self, request: ChatCompletionRequest) -> ChatCompletionResponse:
        parts: list[str] = []
        stop_reason = StopReason.end_of_turn
        async for chunk in self.chat_completion_stream(request):
            if isinstance(chunk.event.delta, str):
                parts.append(chunk.event.delta)
            if chunk.event.stop_reason is not None:
                stop_reason = chunk.event.stop_reason
        message = CompletionMessage(content="".join(parts), stop_reason=stop_reason)
        return ChatCompletionResponse(completion_message=message)

    def chat_completion_stream(
        self, request: ChatCompletionRequest
    ) -> AsyncIterator[ChatCompletionResponseStreamChunk]:
        # Validation happens here, on the call, so a bad request fails before any chunk is sent.
        loaded = self.loaded_model(request.model_id)
        _reject_unsupported(request.model_id, request)
        if request.tools:
            raise NotImplementedYet(
                "tool definitions are not supported by inline::transformers yet; send the chat without tools"
            )
        prompt = encode_dialog(
            request.messages, model_id=request.model_id, tool_prompt_format=request.tool_prompt_format
        )
        generation = self._generation_request(loaded, prompt, request.sampling_params)
        return self._chat_chunks(loaded, generation)

    async def _chat_chunks(
        self, loaded: LoadedModel, generation: GenerationRequest
    ) -> AsyncIterator[ChatCompletionResponseStreamChunk]:
        def event(
            kind: ChatCompletionEventType, delta: str, stop: StopReason | None = None
        ) -> ChatCompletionResponseStreamChunk:
            return ChatCompletionResponseStreamChunk(
                event=ChatCompletionResponseEvent(event_type=kind, delta=delta, stop_reason=stop)
            )

        yield event(ChatCompletionEventType.start, "")
        async for delta, stop_reason in self._text_deltas(loaded, generation):
            if delta:
                yield event(ChatCompletionEventType.progress, delta)
            if stop_reason is not None:
                yield event(ChatCompletionEventType.complete, "", stop_reason)

    async def completion(self, request: CompletionRequest) -> CompletionResponse:
        parts: list[str] = []
        stop_reason = StopReason.out_of_tokens
        async for chunk in self.completion_stream(request):
            parts.append(chunk.delta)
            if chunk.stop_reason is not None:
                stop_reason = chunk.stop_reason
        return CompletionResponse(content="".join(parts), stop_reason=stop_reason)

    def completion_stream(self, request: CompletionRequest) -> AsyncIterator[CompletionResponseStreamChunk]:
        loaded = self.loaded_model(request.model_id)
        _reject_unsupported(request.model_id, request)
        prompt = encode_completion(request.content, model_id=request.model_id)
        generation = self._generation_request(loaded, prompt, request.sampling_params)
        return self._completion_chunks(loaded, generation)

    async def _completion_chunks(
        self, loaded: LoadedModel, generation: GenerationRequest
    ) -> AsyncIterator[CompletionResponseStreamChunk]:
        async for delta, stop_reason in self._text_deltas(loaded, generation):
            if delta or stop_reason is not None:
                yield CompletionResponseStreamChunk(delta=delta, stop_reason=stop_reason)

    async def embeddings(self, request: EmbeddingsRequest) -> EmbeddingsResponse:
        raise InvalidRequest(
            f"model {request.model_id} is served by inline::transformers, which serves LLMs only; "
            "use an embedding model (e.g. all-MiniLM-L6-v2 on inline::sentence-transformers)"
        )

    # --- shared -------------------------------------------------------------------------------

    def _generation_request(
        self, loaded: LoadedModel, prompt: Sequence[int], params: SamplingParams
    ) -> GenerationRequest:
        room = loaded.context_length - len(prompt)
        if room < 1:
            raise InvalidRequest(
                f"the prompt is {len(prompt)} tokens but model {loaded.resource_id} has a context of "
                f"{loaded.context_length} tokens (prompt and answer together); shorten the prompt"
            )
        wanted = params.max_tokens or room  # 0 or None: as much as the context allows
        return GenerationRequest(
            prompt_tokens=prompt,
            max_new_tokens=min(wanted, room),
            sampling=SamplingConfig.from_params(params),
            stop_tokens=llama3_stop_tokens(),
        )

    async def _text_deltas(
        self, loaded: LoadedModel, generation: GenerationRequest
    ) -> AsyncIterator[tuple[str, StopReason | None]]:
        """(text delta, None) as tokens arrive, then (held-back text, stop reason) once."""
        stream = loaded.engine.submit(generation)
        decoder = StreamDecoder()
        try:
            async for event in stream.events():
                if isinstance(event, TokenEvent):
                    yield decoder.feed(event.token_id), None
                elif isinstance(event, FinishEvent):
                    yield decoder.flush(), event.stop_reason
        finally:
            # Reached on aclose() or cancellation too: the engine drops the row before its next step.
            stream.cancel()


def _reject_unsupported(model_id: str, request: ChatCompletionRequest | CompletionRequest) -> None:
    if request.response_format is not None:
        raise NotImplementedYet(f"response_format (structured output) is not supported for model {model_id}")
    if request.logprobs is not None and request.logprobs.top_k > 0:
        raise NotImplementedYet(f"logprobs are not supported for model {model_id} yet")
