"""The call chain's wrappers around routers and providers, each satisfying the Protocol of what it
wraps (guardrails, per request, are distribution/guardrails.py).

- Model scopes (`ScopedInference`, `ScopedAgents`): the routers the faces call refuse a model
  outside the caller's API key (403). Only the faces' routers are wrapped: a provider keeps the
  plain router it was given, because a shield's or an agent's own inference calls are not the
  caller's choice of model. Installed only when some key is limited to some models.
- Metering (`MeteredInference`) wraps each inference provider where the inference router calls
  it, so every call (from either face, from an agent, from a shield) is measured once: Prometheus
  metrics, a GenAI span, and the caller's tokens charged to its quota. Installed only when one of
  those is on.

resolver.build_stack installs both, from server.operations.Operations.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel

from llama_stack.apis.agents import (
    Agents,
    CreateAgentRequest,
    CreateAgentResponse,
    CreateSessionRequest,
    CreateSessionResponse,
    CreateTurnRequest,
    GetSessionRequest,
    GetStepResponse,
    Session,
    SessionRef,
    StepRef,
    Turn,
    TurnRef,
    TurnStreamChunk,
)
from llama_stack.apis.inference import (
    ChatCompletionRequest,
    ChatCompletionResponse,
    ChatCompletionResponseStreamChunk,
    CompletionRequest,
    CompletionResponse,
    CompletionResponseStreamChunk,
    EmbeddingsRequest,
    EmbeddingsResponse,
    Inference,
    Usage,
)
from llama_stack.distribution.request_context import current_caller, require_model
from llama_stack.distribution.spec import ANONYMOUS

if TYPE_CHECKING:
    from llama_stack.server.metrics import Metrics
    from llama_stack.server.quotas import Quotas
    from llama_stack.server.tracing import Tracing

log = logging.getLogger("llama_stack.server")


class ScopedInference:
    """Inference that checks the model a request names against the caller's key first."""

    def __init__(self, inner: Inference) -> None:
        self.inner = inner

    async def chat_completion(self, request: ChatCompletionRequest) -> ChatCompletionResponse:
        require_model(request.model_id)
        return await self.inner.chat_completion(request)

    def chat_completion_stream(
        self, request: ChatCompletionRequest
    ) -> AsyncIterator[ChatCompletionResponseStreamChunk]:
        require_model(request.model_id)
        return self.inner.chat_completion_stream(request)

    async def completion(self, request: CompletionRequest) -> CompletionResponse:
        require_model(request.model_id)
        return await self.inner.completion(request)

    def completion_stream(self, request: CompletionRequest) -> AsyncIterator[CompletionResponseStreamChunk]:
        require_model(request.model_id)
        return self.inner.completion_stream(request)

    async def embeddings(self, request: EmbeddingsRequest) -> EmbeddingsResponse:
        require_model(request.model_id)
        return await self.inner.embeddings(request)


class ScopedAgents:
    """Agents that refuse to create an agent on a model outside the caller's key; the rest as is."""

    def __init__(self, inner: Agents) -> None:
        self.inner = inner

    async def create_agent(self, request: CreateAgentRequest) -> CreateAgentResponse:
        require_model(request.agent_config.model)
        return await self.inner.create_agent(request)

    async def delete_agent(self, agent_id: str) -> None:
        await self.inner.delete_agent(agent_id)

    async def create_session(self, request: CreateSessionRequest) -> CreateSessionResponse:
        return await self.inner.create_session(request)

    async def get_session(self, request: GetSessionRequest) -> Session:
        return await self.inner.get_session(request)

    async def delete_session(self, request: SessionRef) -> None:
        await self.inner.delete_session(request)

    def create_turn(self, request: CreateTurnRequest) -> AsyncIterator[TurnStreamChunk]:
        return self.inner.create_turn(request)

    async def get_turn(self, request: TurnRef) -> Turn:
        return await self.inner.get_turn(request)

    async def get_step(self, request: StepRef) -> GetStepResponse:
        return await self.inner.get_step(request)


# Metering -------------------------------------------------------------------------------------


class Meter:
    """What measuring an inference call takes: any of metrics, tracing and token quotas."""

    def __init__(self, metrics: Metrics | None, tracing: Tracing | None, quotas: Quotas | None) -> None:
        self.metrics = metrics
        self.tracing = tracing
        self.quotas = quotas if quotas is not None and quotas.counts_tokens else None

    @property
    def active(self) -> bool:
        return self.metrics is not None or self.tracing is not None or self.quotas is not None


class _Call:
    """One inference call being measured, from its start to its last chunk."""

    def __init__(self, meter: Meter, labels: tuple[str, str, str, str], request: BaseModel) -> None:
        self.meter = meter
        self.labels = labels
        self.started = time.perf_counter()
        self.first_chunk = True
        self.span: Any = None
        if meter.tracing is not None:
            provider_id, provider_type, model, operation = labels
            attributes: dict[str, Any] = {
                "gen_ai.operation.name": operation,
                "gen_ai.system": provider_type,
                "gen_ai.request.model": model,
                "llama_stack.provider_id": provider_id,
            }
            sampling = getattr(request, "sampling_params", None)
            if sampling is not None:
                for name in ("max_tokens", "temperature", "top_p", "top_k", "seed"):
                    value = getattr(sampling, name, None)
                    if value is not None and (value or name in ("temperature", "seed")):
                        attributes[f"gen_ai.request.{name}"] = value
            from opentelemetry.trace import SpanKind

            name = f"{operation} {model}"
            self.span = meter.tracing.tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attributes)

    def chunk(self) -> None:
        if self.first_chunk:
            self.first_chunk = False
            if self.meter.metrics is not None:
                self.meter.metrics.first_token.labels(*self.labels).observe(time.perf_counter() - self.started)

    def end(self, usage: Usage | None, stop_reason: Any = None, error: BaseException | None = None) -> None:
        """Record the call; synchronous, so that it happens even while the request is being cancelled."""
        metrics, span = self.meter.metrics, self.span
        provider_id, provider_type, model, _ = self.labels
        if metrics is not None:
            metrics.inference_requests.labels(*self.labels).inc()
            metrics.inference_latency.labels(*self.labels).observe(time.perf_counter() - self.started)
            if error is not None:
                metrics.inference_errors.labels(*self.labels, type(error).__name__).inc()
            if usage is not None:
                metrics.tokens.labels(provider_id, provider_type, model, "input").inc(usage.prompt_tokens)
                metrics.tokens.labels(provider_id, provider_type, model, "output").inc(usage.completion_tokens)
        if span is not None:
            if usage is not None:
                span.set_attribute("gen_ai.usage.input_tokens", usage.prompt_tokens)
                span.set_attribute("gen_ai.usage.output_tokens", usage.completion_tokens)
            if stop_reason is not None:
                span.set_attribute("gen_ai.response.finish_reasons", [str(stop_reason)])
            if error is not None:
                from opentelemetry.trace import StatusCode

                span.set_attribute("error.type", type(error).__name__)
                span.set_status(StatusCode.ERROR, getattr(error, "message", None) or type(error).__name__)
            span.end()

    async def charge(self, usage: Usage | None) -> None:
        """Add the call's tokens to the caller's count for the day."""
        if self.meter.quotas is not None and usage is not None:
            caller = current_caller()
            try:
                await self.meter.quotas.charge(caller.name if caller else ANONYMOUS, usage.total_tokens)
            except Exception as error:  # the answer is made: deliver it, uncounted, rather than fail it
                log.error("quota store unavailable, %d tokens not charged: %s", usage.total_tokens, error)


Request = ChatCompletionRequest | CompletionRequest | EmbeddingsRequest
Answer = TypeVar("Answer", ChatCompletionResponse, CompletionResponse, EmbeddingsResponse)
C = TypeVar("C", ChatCompletionResponseStreamChunk, CompletionResponseStreamChunk)


class MeteredInference:
    """An inference provider, measured: satisfies Inference, as the provider it wraps does."""

    def __init__(self, inner: Inference, provider_id: str, provider_type: str, meter: Meter) -> None:
        self.inner = inner
        self.provider_id = provider_id
        self.provider_type = provider_type
        self.meter = meter

    def _call(self, operation: str, request: Request) -> _Call:
        labels = (self.provider_id, self.provider_type, str(request.model_id), operation)
        return _Call(self.meter, labels, request)

    async def _once(self, operation: str, request: Request, answer: Awaitable[Answer]) -> Answer:
        call = self._call(operation, request)
        try:
            response = await answer
        except asyncio.CancelledError:
            call.end(None)
            raise
        except BaseException as error:
            call.end(None, error=error)
            raise
        call.chunk()
        stop = getattr(getattr(response, "completion_message", response), "stop_reason", None)
        call.end(response.usage, stop)
        await call.charge(response.usage)
        return response

    async def _stream(
        self,
        operation: str,
        request: Request,
        chunks: AsyncIterator[C],
        end_of: Callable[[C], tuple[Usage | None, Any]],
    ) -> AsyncIterator[C]:
        call = self._call(operation, request)
        usage, stop, error = None, None, None
        try:
            async for chunk in chunks:
                call.chunk()
                chunk_usage, chunk_stop = end_of(chunk)
                usage, stop = chunk_usage or usage, chunk_stop or stop
                yield chunk
        except (GeneratorExit, asyncio.CancelledError):  # the consumer stopped or left: no failure
            raise
        except BaseException as failure:
            error = failure
            raise
        finally:
            call.end(usage, stop, error)
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                await aclose()
            # Also when the consumer stops after the last chunk (the /v1 face does), not on failure.
            if error is None:
                await call.charge(usage)

    async def chat_completion(self, request: ChatCompletionRequest) -> ChatCompletionResponse:
        return await self._once("chat", request, self.inner.chat_completion(request))

    def chat_completion_stream(
        self, request: ChatCompletionRequest
    ) -> AsyncIterator[ChatCompletionResponseStreamChunk]:
        return self._stream("chat", request, self.inner.chat_completion_stream(request), _chat_end)

    async def completion(self, request: CompletionRequest) -> CompletionResponse:
        return await self._once("text_completion", request, self.inner.completion(request))

    def completion_stream(self, request: CompletionRequest) -> AsyncIterator[CompletionResponseStreamChunk]:
        return self._stream("text_completion", request, self.inner.completion_stream(request), _completion_end)

    async def embeddings(self, request: EmbeddingsRequest) -> EmbeddingsResponse:
        return await self._once("embeddings", request, self.inner.embeddings(request))


def _chat_end(chunk: ChatCompletionResponseStreamChunk) -> tuple[Usage | None, Any]:
    return chunk.event.usage, chunk.event.stop_reason


def _completion_end(chunk: CompletionResponseStreamChunk) -> tuple[Usage | None, Any]:
    return chunk.usage, chunk.stop_reason
