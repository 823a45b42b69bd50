"""The inline::transformers Inference provider: Llama 3.x text and vision models, and other
Hugging Face causal LMs prompted with their own chat template (prompts.py), run in-process.

Each registered model is loaded once and gets its own GenerationEngine (a worker thread that
batches that model's concurrent requests; a vision model takes them one at a time). Requests
become prompts in requests.py (tools, images, response_format) through the model's PromptFormat,
generate as Steps here, and become API results in responses.py (text, tool calls, logprobs, usage).

Device and dtype come from the config. On a GPU this runs the same eager decode loop with a
dynamic KV cache as on the CPU: the static-cache / torch.compile path is not taken yet, as it
could not be tested without a GPU.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llama_stack.apis.errors import InvalidRequest, ModelNotFound
from llama_stack.apis.inference import (
    ChatCompletionRequest,
    ChatCompletionResponse,
    ChatCompletionResponseStreamChunk,
    CompletionRequest,
    CompletionResponse,
    CompletionResponseStreamChunk,
    EmbeddingsRequest,
    EmbeddingsResponse,
    Usage,
)
from llama_stack.apis.models import Model, ModelType
from llama_stack.distribution.outbound import OutboundPolicy

from ..loaded_models import LoadedModels
from .batch import DecodeBatch, RowBatch
from .config import TransformersInferenceConfig
from .engine import FinishEvent, GenerationEngine, GenerationRequest, TokenEvent
from .prompts import Llama3Format, PromptFormat, TemplateFormat, is_llama3_vocabulary
from .requests import EncodedChat, GenerationPlan, encode_chat, encode_chat_now, needs_fetch, plan_chat, plan_completion
from .responses import ChatStreamAssembler, Collected, CompletionStreamAssembler, Step, token_logprobs
from .sampling import SamplingConfig
from .static_batch import StaticDecodeBatch
from .structured import json_constraint
from .vision import VisionDecodeBatch, is_vision_checkpoint, load_image_processor, load_vision_model
from .weights import load_causal_lm, pick_device, pick_dtype, resolve_weights

log = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    resource_id: str
    path: Path
    context_length: int
    engine: GenerationEngine
    load_seconds: float
    prompts: PromptFormat  # Llama 3's chat format, or the checkpoint's own chat template
    image_processor: Any | None = None  # set for a vision (Mllama) model
    model: Any = None  # the torch module, on its device and in its dtype


class TransformersInference:
    """Implements the Inference protocol and ModelOwner (register_model / unregister_model)."""

    def __init__(self, config: TransformersInferenceConfig, outbound: OutboundPolicy | None = None) -> None:
        self.config = config
        self.outbound = outbound  # image URLs are fetched under it (None: the default, public addresses only)
        self._models = LoadedModels(self._load)

    # --- models -------------------------------------------------------------------------------

    async def register_model(self, model: Model) -> Model:
        if model.model_type != ModelType.llm:
            raise InvalidRequest(
                f"inline::transformers serves LLMs only; model {model.identifier} is an "
                f"{model.model_type.value} model (use inline::sentence-transformers for embeddings)"
            )
        loaded = await self._models.register(model.identifier, model.provider_resource_id)
        metadata = {**model.metadata, "context_length": loaded.context_length}
        return model.model_copy(update={"metadata": metadata})

    async def unregister_model(self, model_id: str) -> None:
        released = self._models.unregister(model_id)
        if released is not None:
            await asyncio.to_thread(released.engine.close)

    async def shutdown(self) -> None:
        for loaded in self._models.clear():
            await asyncio.to_thread(loaded.engine.close)

    def loaded_model(self, resource_id: str) -> LoadedModel:
        loaded = self._models.by_resource.get(resource_id)
        if loaded is None:
            raise ModelNotFound(resource_id, available=list(self._models.by_resource))
        return loaded

    def _text_batch(self, model: Any, device: str, context_length: int) -> RowBatch:
        """How a text model's rows decode together, as the config asks."""
        if self.config.decode_path == "eager":
            return DecodeBatch(model)
        compile_step = self.config.compile_decode == "on" or (
            self.config.compile_decode == "auto" and device.startswith("cuda")
        )
        return StaticDecodeBatch(
            model, slots=self.config.max_batch_size, max_len=context_length, compile_step=compile_step
        )

    def _load(self, resource_id: str) -> LoadedModel:
        started = time.perf_counter()
        weights = resolve_weights(resource_id, self.config)
        device = pick_device(self.config.device)
        dtype = pick_dtype(self.config.dtype, device)
        image_processor = None
        if is_vision_checkpoint(weights.path):
            model = load_vision_model(weights.path, device, dtype)
            image_processor = load_image_processor(weights.path, model)
            batch: RowBatch = VisionDecodeBatch(model)
            text_config = model.config.get_text_config()
        else:
            model = load_causal_lm(weights.path, device, dtype)
            text_config = model.config
        prompts: PromptFormat = (
            Llama3Format() if is_llama3_vocabulary(text_config) else TemplateFormat.from_checkpoint(weights.path, model)
        )
        model_limit = getattr(text_config, "max_position_embeddings", None) or self.config.max_seq_len
        context_length = min(self.config.max_seq_len, int(model_limit))
        if image_processor is None:
            batch = self._text_batch(model, device, context_length)
        engine = GenerationEngine(
            model,
            name=resource_id,
            max_batch_size=1 if image_processor is not None else self.config.max_batch_size,
            prefill_token_budget=self.config.max_prompt_tokens_per_step,
            batch=batch,
        )
        seconds = time.perf_counter() - started
        log.info(
            "model %s ready from %s (%s, %s prompts) in %.1fs",
            resource_id,
            weights.path,
            weights.source,
            prompts.name,
            seconds,
        )
        return LoadedModel(
            resource_id=resource_id,
            path=weights.path,
            context_length=context_length,
            engine=engine,
            load_seconds=seconds,
            prompts=prompts,
            image_processor=image_processor,
            model=model,
        )

    # --- inference ----------------------------------------------------------------------------

    async def chat_completion(self, request: ChatCompletionRequest) -> ChatCompletionResponse:
        loaded, plan, encoded = self._prepare_chat(request)
        collected = Collected(wants_logprobs=plan.logprobs_top_k > 0)
        async for step in self._chat_steps(loaded, plan, encoded):
            collected.add(step)
        return collected.chat_response(plan.parse_tools, plan.tool_format)

    def chat_completion_stream(
        self, request: ChatCompletionRequest
    ) -> AsyncIterator[ChatCompletionResponseStreamChunk]:
        # Validation happens here, on the call, so a bad request fails before any chunk is sent;
        # only a prompt with image URLs to download is encoded later, when the stream starts.
        loaded, plan, encoded = self._prepare_chat(request)
        return self._chat_chunks(loaded, plan, encoded)

    def _prepare_chat(self, request: ChatCompletionRequest) -> tuple[LoadedModel, GenerationPlan, EncodedChat | None]:
        loaded = self.loaded_model(request.model_id)
        vision = loaded.image_processor is not None
        plan = plan_chat(request, vision=vision)
        if needs_fetch(plan):
            return loaded, plan, None
        encoded = encode_chat_now(plan, loaded.prompts, vision=vision)
        self._check_room(loaded, encoded.tokens)
        return loaded, plan, encoded

    async def _chat_chunks(
        self, loaded: LoadedModel, plan: GenerationPlan, encoded: EncodedChat | None
    ) -> AsyncIterator[ChatCompletionResponseStreamChunk]:
        assembler = ChatStreamAssembler(parse_tools=plan.parse_tools)
        steps = self._chat_steps(loaded, plan, encoded)
        try:
            first = await anext(steps)  # image fetch errors surface before `start` is sent
            yield assembler.start()
            for chunk in assembler.feed(first):
                yield chunk
            async for step in steps:
                for chunk in assembler.feed(step):
                    yield chunk
        finally:
            await steps.aclose()

    async def _chat_steps(
        self, loaded: LoadedModel, plan: GenerationPlan, encoded: EncodedChat | None
    ) -> AsyncGenerator[Step, None]:
        vision = loaded.image_processor is not None
        if encoded is None:
            encoded = await encode_chat(plan, loaded.prompts, vision=vision, outbound=self.outbound)
        model_inputs = await encoded.model_inputs(loaded.image_processor)
        async for step in self._steps(loaded, plan, encoded.tokens, model_inputs):
            yield step

    async def completion(self, request: CompletionRequest) -> CompletionResponse:
        loaded = self.loaded_model(request.model_id)
        plan = plan_completion(request)
        collected = Collected(wants_logprobs=plan.logprobs_top_k > 0)
        prompt = loaded.prompts.encode_completion(request.content, model_id=request.model_id)
        async for step in self._steps(loaded, plan, prompt):
            collected.add(step)
        return collected.completion_response()

    def completion_stream(self, request: CompletionRequest) -> AsyncIterator[CompletionResponseStreamChunk]:
        loaded = self.loaded_model(request.model_id)
        plan = plan_completion(request)
        prompt = loaded.prompts.encode_completion(request.content, model_id=request.model_id)
        self._check_room(loaded, prompt)
        return self._completion_chunks(loaded, plan, prompt)

    async def _completion_chunks(
        self, loaded: LoadedModel, plan: GenerationPlan, prompt: list[int]
    ) -> AsyncIterator[CompletionResponseStreamChunk]:
        assembler = CompletionStreamAssembler()
        async for step in self._steps(loaded, plan, prompt):
            for chunk in assembler.feed(step):
                yield chunk

    async def embeddings(self, request: EmbeddingsRequest) -> EmbeddingsResponse:
        raise InvalidRequest(
            f"model {request.model_id} is served by inline::transformers, which serves LLMs only; "
            "use an embedding model (e.g. all-MiniLM-L6-v2 on inline::sentence-transformers)"
        )

    # --- shared -------------------------------------------------------------------------------

    def _check_room(self, loaded: LoadedModel, prompt: Sequence[int]) -> int:
        room = loaded.context_length - len(prompt)
        if room < 1:
            raise InvalidRequest(
                f"the prompt is {len(prompt)} tokens but model {loaded.resource_id} has a context of "
                f"{loaded.context_length} tokens (prompt and answer together); shorten the prompt"
            )
        return room

    def _generation_request(
        self, loaded: LoadedModel, plan: GenerationPlan, prompt: Sequence[int], model_inputs: Any = None
    ) -> GenerationRequest:
        room = self._check_room(loaded, prompt)
        params = plan.sampling
        wanted = params.max_tokens or room  # 0 or None: as much as the context allows
        max_new_tokens = min(wanted, room)
        return GenerationRequest(
            prompt_tokens=prompt,
            max_new_tokens=max_new_tokens,
            sampling=SamplingConfig.from_params(params),
            stop_tokens=loaded.prompts.stop_tokens,
            seed=params.seed,
            logprobs_top_k=plan.logprobs_top_k,
            constraint=json_constraint(plan.schema, len(prompt), max_new_tokens, loaded.prompts.enforcer_vocab),
            model_inputs=model_inputs,
        )

    async def _steps(
        self, loaded: LoadedModel, plan: GenerationPlan, prompt: Sequence[int], model_inputs: Any = None
    ) -> AsyncIterator[Step]:
        """A Step per generated token as it arrives, then one with the stop reason and usage."""
        generation = self._generation_request(loaded, plan, prompt, model_inputs)
        stream = loaded.engine.submit(generation)
        decoder = loaded.prompts.decoder()
        token_text = loaded.prompts.token_text
        try:
            async for event in stream.events():
                if isinstance(event, TokenEvent):
                    top = event.top_logprobs
                    logprobs = token_logprobs(top, token_text) if top is not None else None
                    yield Step(decoder.feed(event.token_id), logprobs)
                elif isinstance(event, FinishEvent):
                    usage = Usage(prompt_tokens=len(prompt), completion_tokens=event.generated_tokens)
                    yield Step(decoder.flush(), stop_reason=event.stop_reason, usage=usage)
        finally:
            # Reached on aclose() or cancellation too: the engine drops the row before its next step.
            stream.cancel()
