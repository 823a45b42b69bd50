"""Our Inference types <-> OpenAI's chat/completions/embeddings bodies, as plain JSON values.

Requests become dicts that client.py serialises once; answers are the upstream's parsed JSON,
read straight into our types (a body of another shape raises KeyError/TypeError, which
errors.translate reports as "not the expected JSON").

Tool-call arguments that are not a JSON object (the model wrote broken JSON, or was cut off by
max_tokens) do not become a ToolCall: a non-streaming answer keeps the raw call as text in the
message content, so the caller sees what the model wrote and no agent runs a half-parsed call;
a stream ends the call with a ToolCallDelta of parse_status `failure` carrying the raw text.
"""

from __future__ import annotations

import base64
import json
from typing import Any

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
    EmbeddingsResponse,
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
    if vendor.extra_sampling:  # beside OpenAI's parameters, in the same body
        if params.strategy == SamplingStrategy.top_k and params.top_k:
            out["top_k"] = params.top_k
        if params.repetition_penalty not in (None, 1.0):
            out["repetition_penalty"] = params.repetition_penalty
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


def usage(raw: dict[str, Any] | None) -> Usage | None:
    if raw is None:
        return None
    return Usage(prompt_tokens=raw["prompt_tokens"], completion_tokens=raw.get("completion_tokens") or 0)


def parse_arguments(raw: str) -> dict[str, Any] | None:
    """A tool call's arguments as a JSON object, or None when they are not one."""
    if not raw.strip():
        return {}
    try:
        arguments = json.loads(raw)
    except ValueError:
        return None
    return arguments if isinstance(arguments, dict) else None


def chat_logprobs(logprobs: dict[str, Any] | None) -> list[TokenLogProbs] | None:
    """A choice's `logprobs` ({"content": [{token, logprob, top_logprobs}, ...]}) as ours."""
    tokens = logprobs.get("content") if logprobs is not None else None
    if tokens is None:
        return None
    return [
        TokenLogProbs(
            logprobs_by_token={t["token"]: t["logprob"] for t in token.get("top_logprobs") or ()}
            or {token["token"]: token["logprob"]}
        )
        for token in tokens
    ]


def chat_response(completion: dict[str, Any], provider_type: str) -> ChatCompletionResponse:
    choices = completion["choices"]
    if not choices:
        raise UpstreamError(f"{provider_type} answered a chat completion with no choices")
    choice = choices[0]
    message = choice["message"]
    text = message.get("content") or ""
    calls: list[ToolCall] = []
    for call in message.get("tool_calls") or ():
        function = call.get("function")
        if function is None:  # a custom (non-function) tool call: nothing we can represent
            continue
        raw = function.get("arguments") or ""
        arguments = parse_arguments(raw)
        if arguments is None:
            text += f"{function['name']}({raw})"
        else:
            calls.append(ToolCall(call_id=call["id"], tool_name=function["name"], arguments=arguments))
    finish = stop_reason(choice.get("finish_reason"))
    return ChatCompletionResponse(
        completion_message=CompletionMessage(content=text, stop_reason=finish, tool_calls=calls),
        logprobs=chat_logprobs(choice.get("logprobs")),
        usage=usage(completion.get("usage")),
    )


def completion_logprobs(choice: dict[str, Any]) -> list[TokenLogProbs] | None:
    logprobs = choice.get("logprobs")
    if logprobs is None:
        return None
    if logprobs.get("top_logprobs"):
        return [TokenLogProbs(logprobs_by_token=dict(top)) for top in logprobs["top_logprobs"]]
    pairs = zip(logprobs.get("tokens") or (), logprobs.get("token_logprobs") or (), strict=False)
    return [TokenLogProbs(logprobs_by_token={token: value}) for token, value in pairs]


def completion_response(completion: dict[str, Any], provider_type: str) -> CompletionResponse:
    choices = completion["choices"]
    if not choices:
        raise UpstreamError(f"{provider_type} answered a completion with no choices")
    choice = choices[0]
    return CompletionResponse(
        content=choice["text"],
        stop_reason=stop_reason(choice.get("finish_reason")),
        logprobs=completion_logprobs(choice),
        usage=usage(completion.get("usage")),
    )


def embeddings_response(result: dict[str, Any]) -> EmbeddingsResponse:
    vectors = [item["embedding"] for item in sorted(result["data"], key=lambda item: item["index"])]
    raw = result.get("usage")
    return EmbeddingsResponse(
        embeddings=vectors, usage=Usage(prompt_tokens=raw["prompt_tokens"], completion_tokens=0) if raw else None
    )
