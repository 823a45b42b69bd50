"""The remote::ollama Inference provider.

Text chats with Llama models are prompted exactly as the local provider prompts them: the Llama 3
chat format (tool definitions included) is rendered here and sent to /api/generate with
`raw: true`, and the answer is parsed for tool calls here, so tool formats behave the same on
every provider. Raw prompts cannot carry pixels, so chats with images go through /api/chat (as do
models whose Ollama template is not Llama 3). Completions use raw /api/generate, embeddings
/api/embed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import ollama

from llama_stack.apis.common import CompletionMessage, Message, content_has_image, content_text
from llama_stack.apis.errors import InvalidRequest, ModelNotFound, NotImplementedYet, UpstreamError
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
    JsonSchemaResponseFormat,
    ToolCallDelta,
    ToolCallParseStatus,
    Usage,
)
from llama_stack.apis.models import Model, ModelType
from llama_stack.distribution.outbound import OutboundPolicy
from llama_stack.models.chat_format import decode_tokens, encode_completion, encode_dialog, text_only_error
from llama_stack.models.tool_calls import ToolCallStreamParser, parse_assistant_output

from .client import OllamaConnection, pull_command
from .config import OllamaInferenceConfig
from .mapping import chat_messages, chat_tools, sampling_options, stop_reason, tool_calls_of, usage
from .models import lookup, normalize_tag, tag_candidates

log = logging.getLogger(__name__)

LLAMA3_TEMPLATE_MARK = "<|start_header_id|>"
BEGIN_OF_TEXT = "<|begin_of_text|>"


@dataclass(frozen=True)
class ServedModel:
    tag: str  # the Ollama tag requests go to
    llama_id: str  # names the prompt family (tool formats); the tag itself when the table lacks it
    raw_prompt: bool  # a Llama 3 template: we render the prompt and send it raw
    vision: bool


def _event(
    kind: ChatCompletionEventType, delta: str | ToolCallDelta = "", **extra: Any
) -> ChatCompletionResponseStreamChunk:
    return ChatCompletionResponseStreamChunk(event=ChatCompletionResponseEvent(event_type=kind, delta=delta, **extra))


class OllamaInference:
    """Implements the Inference protocol and ModelOwner (register_model / unregister_model)."""

    def __init__(self, config: OllamaInferenceConfig, outbound: OutboundPolicy | None = None) -> None:
        self.config = config
        self.ollama = OllamaConnection(config)
        self.outbound = outbound or OutboundPolicy()  # for images given by URL
        self._models: dict[str, ServedModel] = {}  # by provider_resource_id
        self._identifiers: dict[str, str] = {}  # registered identifier -> provider_resource_id
        self._lock = asyncio.Lock()

    # --- models -------------------------------------------------------------------------------

    async def register_model(self, model: Model) -> Model:
        resource_id = model.provider_resource_id
        async with self._lock:
            tag = await self._installed_tag(resource_id)
            show = await self.ollama.show(tag)
        entry = lookup(resource_id) or lookup(tag)
        details = show.details
        families = list((details.families if details else None) or [])
        capabilities = list(getattr(show, "capabilities", None) or [])  # newer clients only
        if model.model_type == ModelType.llm and capabilities and "completion" not in capabilities:
            raise InvalidRequest(
                f"Ollama's {tag} cannot generate text (it can: {', '.join(capabilities)}); "
                f"register {model.identifier} with model_type 'embedding'"
            )
        self._models[resource_id] = ServedModel(
            tag=tag,
            llama_id=entry.llama_id if entry else tag,
            raw_prompt=(entry is not None and not entry.embedding) or LLAMA3_TEMPLATE_MARK in (show.template or ""),
            vision=(entry is not None and entry.vision) or "vision" in capabilities or "mllama" in families,
        )
        self._identifiers[model.identifier] = resource_id
        metadata: dict[str, Any] = {**model.metadata, "ollama_tag": tag}
        for key, value in (show.modelinfo or {}).items():
            if key.endswith(".context_length"):
                metadata.setdefault("context_length", value)
            if key.endswith(".embedding_length") and model.model_type == ModelType.embedding:
                metadata.setdefault("embedding_dimension", value)
        return model.model_copy(update={"metadata": metadata})

    async def _installed_tag(self, resource_id: str) -> str:
        """The installed tag that serves `resource_id`, pulled first if allowed and missing."""
        candidates = tag_candidates(resource_id)
        installed = await self.ollama.installed_tags()
        for candidate in candidates:
            if normalize_tag(candidate) in installed:
                return installed[normalize_tag(candidate)]
        wanted = candidates[0]
        if not self.config.pull_missing_models:
            also = f" (or one of {', '.join(candidates[1:])})" if len(candidates) > 1 else ""
            raise InvalidRequest(
                f"Ollama at {self.ollama.url} does not have the model '{wanted}'{also} that serves "
                f"'{resource_id}'. Run {pull_command(wanted)} on the Ollama host, or set "
                "pull_missing_models: true in the remote::ollama provider config to pull it on registration."
            )
        await self.ollama.pull(wanted)
        return wanted

    async def unregister_model(self, model_id: str) -> None:
        resource_id = self._identifiers.pop(model_id, None) or (model_id if model_id in self._models else None)
        if resource_id is not None and resource_id not in self._identifiers.values():
            self._models.pop(resource_id, None)

    async def shutdown(self) -> None:
        await self.ollama.close()

    def served(self, resource_id: str) -> ServedModel:
        served = self._models.get(resource_id)
        if served is None:
            raise ModelNotFound(resource_id, available=list(self._models))
        return served

    # --- chat ---------------------------------------------------------------------------------

    async def chat_completion(self, request: ChatCompletionRequest) -> ChatCompletionResponse:
        served = self.served(request.model_id)
        _reject_unsupported(request)
        reply: ollama.GenerateResponse | ollama.ChatResponse
        if _uses_api_chat(served, request.messages):
            args = self._chat_args(served, request, await self._chat_messages(served, request.messages))
            reply = await self.ollama.call(served.tag, lambda: self._chat(args))
            calls = tool_calls_of(reply.message) if request.tools else []
            message = CompletionMessage(content=reply.message.content or "", tool_calls=calls)
        else:
            args = self._generate_args(served, self._prompt(served, request), request)
            reply = await self.ollama.call(served.tag, lambda: self._generate(args))
            text = reply.response or ""
            message = CompletionMessage(content=text)
            if request.tools:
                message = parse_assistant_output(text, message.stop_reason, request.tool_prompt_format)
        reason = stop_reason(reply.done_reason, tool_call=bool(message.tool_calls))
        message = message.model_copy(update={"stop_reason": reason})
        return ChatCompletionResponse(completion_message=message, usage=usage(reply))

    def chat_completion_stream(
        self, request: ChatCompletionRequest
    ) -> AsyncIterator[ChatCompletionResponseStreamChunk]:
        # Validation happens here, on the call, so a bad request fails before any chunk is sent.
        served = self.served(request.model_id)
        _reject_unsupported(request)
        if _uses_api_chat(served, request.messages):
            return self._api_chat_chunks(served, request)
        return self._raw_chat_chunks(served, request, self._prompt(served, request))

    async def _raw_chat_chunks(
        self, served: ServedModel, request: ChatCompletionRequest, prompt: str
    ) -> AsyncIterator[ChatCompletionResponseStreamChunk]:
        parser = ToolCallStreamParser() if request.tools else None
        yield _event(ChatCompletionEventType.start)
        final = None
        async for part in self.ollama.stream(
            served.tag, lambda: self._generate_stream(self._generate_args(served, prompt, request))
        ):
            if part.response:
                for item in parser.feed(part.response) if parser else [part.response]:
                    yield _event(ChatCompletionEventType.progress, item)
            if part.done:
                final = part
        if final is None:
            raise UpstreamError(f"Ollama at {self.ollama.url} ended the stream without its final part")
        for item in parser.finish() if parser else []:
            yield _event(ChatCompletionEventType.progress, item)
        reason = stop_reason(final.done_reason, tool_call=bool(parser and parser.tool_calls))
        yield _event(ChatCompletionEventType.complete, stop_reason=reason, usage=usage(final))

    async def _api_chat_chunks(
        self, served: ServedModel, request: ChatCompletionRequest
    ) -> AsyncIterator[ChatCompletionResponseStreamChunk]:
        messages = await self._chat_messages(served, request.messages)
        yield _event(ChatCompletionEventType.start)
        final, called = None, False
        async for part in self.ollama.stream(
            served.tag, lambda: self._chat_stream(self._chat_args(served, request, messages))
        ):
            if part.message.content:
                yield _event(ChatCompletionEventType.progress, part.message.content)
            for call in tool_calls_of(part.message) if request.tools else []:
                called = True
                delta = ToolCallDelta(content=call, parse_status=ToolCallParseStatus.success)
                yield _event(ChatCompletionEventType.progress, delta)
            if part.done:
                final = part
        if final is None:
            raise UpstreamError(f"Ollama at {self.ollama.url} ended the stream without its final part")
        reason = stop_reason(final.done_reason, tool_call=called)
        yield _event(ChatCompletionEventType.complete, stop_reason=reason, usage=usage(final))

    def _prompt(self, served: ServedModel, request: ChatCompletionRequest) -> str:
        tokens = encode_dialog(
            request.messages,
            model_id=served.llama_id,
            tools=request.tools,
            tool_prompt_format=request.tool_prompt_format,
            tool_choice=request.tool_choice,
        )
        return _without_bos(decode_tokens(tokens))

    async def _chat_messages(self, served: ServedModel, messages: list[Message]) -> list[dict[str, Any]]:
        return await chat_messages(messages, self.outbound)

    def _chat_args(
        self, served: ServedModel, request: ChatCompletionRequest, messages: list[dict[str, Any]]
    ) -> dict[str, Any]:
        return {
            "model": served.tag,
            "messages": messages,
            "tools": chat_tools(request.tools) if request.tools else None,
            "format": _format(request),
            "options": sampling_options(request.sampling_params),
        }

    async def _chat(self, args: dict[str, Any]) -> ollama.ChatResponse:
        return await self.ollama.client.chat(**args, stream=False)

    async def _chat_stream(self, args: dict[str, Any]) -> AsyncIterator[ollama.ChatResponse]:
        return await self.ollama.client.chat(**args, stream=True)

    @staticmethod
    def _generate_args(
        served: ServedModel, prompt: str, request: ChatCompletionRequest | CompletionRequest
    ) -> dict[str, Any]:
        return {
            "model": served.tag,
            "prompt": prompt,
            "raw": True,
            "format": _format(request),
            "options": sampling_options(request.sampling_params),
        }

    async def _generate(self, args: dict[str, Any]) -> ollama.GenerateResponse:
        return await self.ollama.client.generate(**args, stream=False)

    async def _generate_stream(self, args: dict[str, Any]) -> AsyncIterator[ollama.GenerateResponse]:
        return await self.ollama.client.generate(**args, stream=True)

    # --- completion ---------------------------------------------------------------------------

    async def completion(self, request: CompletionRequest) -> CompletionResponse:
        served, prompt = self._completion_prompt(request)
        reply = await self.ollama.call(served.tag, lambda: self._generate(self._generate_args(served, prompt, request)))
        return CompletionResponse(
            content=reply.response or "", stop_reason=stop_reason(reply.done_reason), usage=usage(reply)
        )

    def completion_stream(self, request: CompletionRequest) -> AsyncIterator[CompletionResponseStreamChunk]:
        served, prompt = self._completion_prompt(request)
        return self._completion_chunks(served, prompt, request)

    async def _completion_chunks(
        self, served: ServedModel, prompt: str, request: CompletionRequest
    ) -> AsyncIterator[CompletionResponseStreamChunk]:
        async for part in self.ollama.stream(
            served.tag, lambda: self._generate_stream(self._generate_args(served, prompt, request))
        ):
            if part.done:
                reason = stop_reason(part.done_reason)
                yield CompletionResponseStreamChunk(delta=part.response or "", stop_reason=reason, usage=usage(part))
                return
            if part.response:
                yield CompletionResponseStreamChunk(delta=part.response)
        raise UpstreamError(f"Ollama at {self.ollama.url} ended the stream without its final part")

    def _completion_prompt(self, request: CompletionRequest) -> tuple[ServedModel, str]:
        served = self.served(request.model_id)
        _reject_unsupported(request)
        if content_has_image(request.content):
            raise NotImplementedYet(
                "remote::ollama completes text only: raw prompts cannot carry images; send images "
                "in a chat_completion to a vision model"
            )
        return served, _without_bos(decode_tokens(encode_completion(request.content, model_id=request.model_id)))

    # --- embeddings ---------------------------------------------------------------------------

    async def embeddings(self, request: EmbeddingsRequest) -> EmbeddingsResponse:
        served = self.served(request.model_id)
        if any(content_has_image(content) for content in request.contents):
            raise InvalidRequest(f"model {request.model_id} embeds text only; remove the image content")
        texts = [content_text(content) for content in request.contents]
        reply = await self.ollama.call(served.tag, lambda: self.ollama.client.embed(model=served.tag, input=texts))
        embeddings = [list(vector) for vector in reply.embeddings]
        return EmbeddingsResponse(
            embeddings=embeddings, usage=Usage(prompt_tokens=usage(reply).prompt_tokens, completion_tokens=0)
        )


def _without_bos(prompt: str) -> str:
    """Ollama's tokenizer adds <|begin_of_text|> itself, even to raw prompts (Llama 3 GGUFs set
    add_bos_token); sending ours too would start the prompt with two."""
    return prompt.removeprefix(BEGIN_OF_TEXT)


def _uses_api_chat(served: ServedModel, messages: list[Message]) -> bool:
    """Whether a chat goes to /api/chat; raises for images sent to a text-only model."""
    images = any(content_has_image(m.content) for m in messages)
    if images and not served.vision:
        raise text_only_error(served.llama_id)
    return images or not served.raw_prompt


def _format(request: ChatCompletionRequest | CompletionRequest) -> dict[str, Any] | None:
    """Ollama's `format`: a JSON schema its sampler enforces (constrained decoding)."""
    if isinstance(request.response_format, JsonSchemaResponseFormat):
        return dict(request.response_format.json_schema)
    return None


def _reject_unsupported(request: ChatCompletionRequest | CompletionRequest) -> None:
    if request.response_format is not None and not isinstance(request.response_format, JsonSchemaResponseFormat):
        raise NotImplementedYet("remote::ollama supports response_format json_schema only, not grammar")
    if request.logprobs is not None and request.logprobs.top_k > 0:
        raise NotImplementedYet(f"logprobs are not supported by remote::ollama (model {request.model_id})")
