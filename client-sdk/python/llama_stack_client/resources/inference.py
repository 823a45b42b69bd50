"""client.inference: chat completion and completion (whole or streamed) and embeddings."""

from __future__ import annotations

from collections.abc import Awaitable, Mapping, Sequence
from typing import Any, Literal, TypedDict, TypeVar, Unpack, overload

from llama_stack.apis.common import InterleavedContent, Message, SamplingParams, ToolDefinition
from llama_stack.apis.inference import (
    ChatCompletionResponse,
    ChatCompletionResponseStreamChunk,
    CompletionResponse,
    CompletionResponseStreamChunk,
    EmbeddingsResponse,
    GrammarResponseFormat,
    JsonSchemaResponseFormat,
    LogProbConfig,
)

from ..calls import AsyncRunner, Call, Resource, StreamCall, SyncRunner, body, endpoint, parser
from ..streaming import AsyncStream, Stream

C = TypeVar("C", covariant=True)

MessageParam = Message | Mapping[str, Any]
"""A message as a wire type (UserMessage, SystemMessage...) or as a plain dict."""


class CompletionOptions(TypedDict, total=False):
    sampling_params: SamplingParams | Mapping[str, Any]
    response_format: JsonSchemaResponseFormat | GrammarResponseFormat | Mapping[str, Any]
    logprobs: LogProbConfig | Mapping[str, Any]


class ChatOptions(CompletionOptions, total=False):
    tools: Sequence[ToolDefinition | Mapping[str, Any]]
    tool_choice: Literal["auto", "required"]
    tool_prompt_format: Literal["json", "function_tag", "python_list"]


CHAT = "/alpha/inference/chat-completion"
COMPLETION = "/alpha/inference/completion"

parse_chat = parser(ChatCompletionResponse)
parse_chat_chunk = parser(ChatCompletionResponseStreamChunk)
parse_completion = parser(CompletionResponse)
parse_completion_chunk = parser(CompletionResponseStreamChunk)
parse_embeddings = parser(EmbeddingsResponse)


class Inference(Resource[C]):
    @overload
    def chat_completion(
        self: Inference[SyncRunner],
        *,
        model_id: str,
        messages: Sequence[MessageParam],
        stream: Literal[False] = False,
        **options: Unpack[ChatOptions],
    ) -> ChatCompletionResponse: ...
    @overload
    def chat_completion(
        self: Inference[SyncRunner],
        *,
        model_id: str,
        messages: Sequence[MessageParam],
        stream: Literal[True],
        **options: Unpack[ChatOptions],
    ) -> Stream[ChatCompletionResponseStreamChunk]: ...
    @overload
    def chat_completion(
        self: Inference[AsyncRunner],
        *,
        model_id: str,
        messages: Sequence[MessageParam],
        stream: Literal[False] = False,
        **options: Unpack[ChatOptions],
    ) -> Awaitable[ChatCompletionResponse]: ...
    @overload
    def chat_completion(
        self: Inference[AsyncRunner],
        *,
        model_id: str,
        messages: Sequence[MessageParam],
        stream: Literal[True],
        **options: Unpack[ChatOptions],
    ) -> Awaitable[AsyncStream[ChatCompletionResponseStreamChunk]]: ...
    def chat_completion(
        self, *, model_id: str, messages: Sequence[MessageParam], stream: bool = False, **options: Any
    ) -> Any:
        """A reply to `messages`; with stream=True, an iterator of chunks whose `event.delta` is
        text (or a ToolCallDelta) and whose last event (`complete`) carries the stop reason."""
        fields = body(model_id=model_id, messages=messages, stream=stream, **options)
        if stream:
            return self._client._stream(StreamCall("POST", CHAT, parse_chat_chunk, body=fields))
        return self._client._call(Call("POST", CHAT, parse_chat, body=fields))

    @overload
    def completion(
        self: Inference[SyncRunner],
        *,
        model_id: str,
        content: InterleavedContent,
        stream: Literal[False] = False,
        **options: Unpack[CompletionOptions],
    ) -> CompletionResponse: ...
    @overload
    def completion(
        self: Inference[SyncRunner],
        *,
        model_id: str,
        content: InterleavedContent,
        stream: Literal[True],
        **options: Unpack[CompletionOptions],
    ) -> Stream[CompletionResponseStreamChunk]: ...
    @overload
    def completion(
        self: Inference[AsyncRunner],
        *,
        model_id: str,
        content: InterleavedContent,
        stream: Literal[False] = False,
        **options: Unpack[CompletionOptions],
    ) -> Awaitable[CompletionResponse]: ...
    @overload
    def completion(
        self: Inference[AsyncRunner],
        *,
        model_id: str,
        content: InterleavedContent,
        stream: Literal[True],
        **options: Unpack[CompletionOptions],
    ) -> Awaitable[AsyncStream[CompletionResponseStreamChunk]]: ...
    def completion(self, *, model_id: str, content: InterleavedContent, stream: bool = False, **options: Any) -> Any:
        """Raw text continuation of `content` (no chat template); stream=True yields `delta`s."""
        fields = body(model_id=model_id, content=content, stream=stream, **options)
        if stream:
            return self._client._stream(StreamCall("POST", COMPLETION, parse_completion_chunk, body=fields))
        return self._client._call(Call("POST", COMPLETION, parse_completion, body=fields))

    @endpoint
    def embeddings(self, *, model_id: str, contents: Sequence[InterleavedContent]) -> Call[EmbeddingsResponse]:
        """One vector per item of `contents`, from an embedding model."""
        fields = body(model_id=model_id, contents=contents)
        return Call("POST", "/alpha/inference/embeddings", parse_embeddings, body=fields)
