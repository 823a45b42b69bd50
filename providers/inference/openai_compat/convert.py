"""Our Inference types <-> OpenAI's chat/completions/embeddings bodies.

Tool-call arguments that are not a JSON object (the model wrote broken JSON, or was cut off by
max_tokens) do not become a ToolCall: a non-streaming answer keeps the raw call as text in the
message content, so the caller sees what the model wrote and no agent runs a half-parsed call;
a stream ends the call with a ToolCallDelta of parse_status `failure` carrying the raw text.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from openai.types.chat import ChatCompletion, ChatCompletionTokenLogprob
from openai.types.completion import Completion
from openai.types.completion_usage import CompletionUsage

from llama_stack.apis.common import (
    CompletionMessage,
    ImageContentItem,
    InterleavedContent,
    Message,
    SamplingParams,
    SamplingStrategy,
    StopReason,
    SystemMessage,
    TextContentItem,
    ToolCall,
    ToolDefinition,
    ToolResponseMessage,
    UserMessage,
    content_has_image,
    content_text,
)
from llama_stack.apis.errors import InvalidRequest, UpstreamError
from llama_stack.apis.inference import (
    ChatCompletionRequest,
    ChatCompletionResponse,
    CompletionRequest,
    CompletionResponse,
    JsonSchemaResponseFormat,
    ResponseFormat,
    TokenLogProbs,
    Usage,
)

from ..remote_common import tool_parameters_schema
from .vendors import Vendor

STOP_REASONS = {
    "stop": StopReason.end_of_turn,
    "length": StopReason.out_of_tokens,
    "tool_calls": StopReason.end_of_message,
    "function_call": StopReason.end_of_message,
}
_IMAGE_MAGIC = {b"\x89PNG": "image/png", b"\xff\xd8\xff": "image/jpeg", b"GIF8": "image/gif", b"RIFF": "image/webp"}


# --- requests ------------------------------------------------------------------------------------


def image_url(item: ImageContentItem) -> str:
    if item.url is not None:
        return item.url.uri
    if not item.data:
        raise InvalidRequest("an image content item needs `url` or base64 `data`")
    if item.data.startswith("data:"):
        return item.data
    head = base64.b64decode(item.data[:16] + "=" * (-len(item.data[:16]) % 4), validate=False)
    mime = next((m for magic, m in _IMAGE_MAGIC.items() if head.startswith(magic)), "image/png")
    return f"data:{mime};base64,{item.data}"


def content_parts(content: InterleavedContent) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    items = content if isinstance(content, list) else [content]
    if not any(isinstance(item, ImageContentItem) for item in items):
        return content_text(content)
    return [
        {"type": "text", "text": item.text}
        if isinstance(item, TextContentItem)
        else {"type": "image_url", "image_url": {"url": image_url(item)}}
        for item in items
    ]


def chat_message(message: Message) -> dict[str, Any]:
    if isinstance(message, UserMessage):
        content = content_parts(message.content)
        if message.context is not None:
            context = content_text(message.context)
            content = f"{content}\n\n{context}" if isinstance(content, str) else [*content, _text(context)]
        return {"role": "user", "content": content}
    if isinstance(message, SystemMessage):
        return {"role": "system", "content": content_text(message.content)}
    if isinstance(message, ToolResponseMessage):
        return {"role": "tool", "tool_call_id": message.call_id, "content": content_text(message.content)}
    out: dict[str, Any] = {"role": "assistant", "content": content_text(message.content) or None}
    if message.tool_calls:
        out["tool_calls"] = [
            {
                "id": call.call_id,
                "type": "function",
                "function": {"name": call.tool_name, "arguments": json.dumps(call.arguments)},
            }
            for call in message.tool_calls
        ]
    return out


def _text(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def tool_schema(tool: ToolDefinition) -> dict[str, Any]:
    function: dict[str, Any] = {"name": tool.tool_name, "parameters": tool_parameters_schema(tool)}
    if tool.description:
        function["description"] = tool.description
    return {"type": "function", "function": function}


def sampling(params: SamplingParams, vendor: Vendor) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if params.strategy == SamplingStrategy.greedy:
        out["temperature"] = 0.0
    else:
        if params.temperature is not None:
            out["temperature"] = params.temperature
        if params.strategy == SamplingStrategy.top_p and params.top_p is not None:
            out["top_p"] = params.top_p
    if params.max_tokens:
        out["max_tokens"] = params.max_tokens
    if params.seed is not None:
        out["seed"] = params.seed
    if vendor.extra_sampling:
        extra: dict[str, Any] = {}
        if params.strategy == SamplingStrategy.top_k and params.top_k:
            extra["top_k"] = params.top_k
        if params.repetition_penalty not in (None, 1.0):
            extra["repetition_penalty"] = params.repetition_penalty
        if extra:
            out["extra_body"] = extra
    return out


def response_format(fmt: ResponseFormat, provider_type: str) -> dict[str, Any]:
    if not isinstance(fmt, JsonSchemaResponseFormat):
        raise InvalidRequest(f"{provider_type} supports response_format of type json_schema only, not {fmt.type}")
    return {"type": "json_schema", "json_schema": {"name": "response", "schema": fmt.json_schema}}


def chat_params(request: ChatCompletionRequest, model: str, vendor: Vendor) -> dict[str, Any]:
    params: dict[str, Any] = {"model": model, "messages": [chat_message(m) for m in request.messages]}
    params.update(sampling(request.sampling_params, vendor))
    if request.tools:
        params["tools"] = [tool_schema(tool) for tool in request.tools]
        params["tool_choice"] = request.tool_choice.value
    if request.response_format is not None:
        params["response_format"] = response_format(request.response_format, vendor.provider_type)
    if request.logprobs is not None:
        params["logprobs"] = True
        params["top_logprobs"] = request.logprobs.top_k
    return params


def completion_params(request: CompletionRequest, model: str, vendor: Vendor) -> dict[str, Any]:
    if content_has_image(request.content):
        raise InvalidRequest(f"{vendor.provider_type} completion takes text only; send images with chat_completion")
    if request.response_format is not None:
        raise InvalidRequest(
            f"{vendor.provider_type} completion does not take response_format; use chat_completion for JSON output"
        )
    params: dict[str, Any] = {"model": model, "prompt": content_text(request.content)}
    params.update(sampling(request.sampling_params, vendor))
    if request.logprobs is not None:
        params["logprobs"] = request.logprobs.top_k
    return params


# --- responses -----------------------------------------------------------------------------------


def stop_reason(finish_reason: str | None) -> StopReason:
    return STOP_REASONS.get(finish_reason or "stop", StopReason.end_of_turn)


def usage(raw: CompletionUsage | None) -> Usage | None:
    if raw is None:
        return None
    return Usage(prompt_tokens=raw.prompt_tokens, completion_tokens=raw.completion_tokens)


def parse_arguments(raw: str) -> dict[str, Any] | None:
    """A tool call's arguments as a JSON object, or None when they are not one."""
    if not raw.strip():
        return {}
    try:
        arguments = json.loads(raw)
    except ValueError:
        return None
    return arguments if isinstance(arguments, dict) else None


def chat_logprobs(tokens: list[ChatCompletionTokenLogprob] | None) -> list[TokenLogProbs] | None:
    if tokens is None:
        return None
    return [
        TokenLogProbs(
            logprobs_by_token={t.token: t.logprob for t in token.top_logprobs} or {token.token: token.logprob}
        )
        for token in tokens
    ]


def chat_response(completion: ChatCompletion, provider_type: str) -> ChatCompletionResponse:
    if not completion.choices:
        raise UpstreamError(f"{provider_type} answered a chat completion with no choices")
    choice = completion.choices[0]
    text = choice.message.content or ""
    calls: list[ToolCall] = []
    for call in choice.message.tool_calls or []:
        function = getattr(call, "function", None)
        if function is None:  # a custom (non-function) tool call: nothing we can represent
            continue
        arguments = parse_arguments(function.arguments)
        if arguments is None:
            text += f"{function.name}({function.arguments})"
        else:
            calls.append(ToolCall(call_id=call.id, tool_name=function.name, arguments=arguments))
    message = CompletionMessage(content=text, stop_reason=stop_reason(choice.finish_reason), tool_calls=calls)
    logprobs = chat_logprobs(choice.logprobs.content) if choice.logprobs is not None else None
    return ChatCompletionResponse(completion_message=message, logprobs=logprobs, usage=usage(completion.usage))


def completion_logprobs(choice: Any) -> list[TokenLogProbs] | None:
    logprobs = getattr(choice, "logprobs", None)
    if logprobs is None:
        return None
    if logprobs.top_logprobs:
        return [TokenLogProbs(logprobs_by_token=dict(top)) for top in logprobs.top_logprobs]
    pairs = zip(logprobs.tokens or [], logprobs.token_logprobs or [], strict=False)
    return [TokenLogProbs(logprobs_by_token={token: value}) for token, value in pairs]


def completion_response(completion: Completion, provider_type: str) -> CompletionResponse:
    if not completion.choices:
        raise UpstreamError(f"{provider_type} answered a completion with no choices")
    choice = completion.choices[0]
    return CompletionResponse(
        content=choice.text,
        stop_reason=stop_reason(choice.finish_reason),
        logprobs=completion_logprobs(choice),
        usage=usage(completion.usage),
    )
