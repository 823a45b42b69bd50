"""Our API's requests in Ollama's terms and Ollama's replies in ours: sampling options, chat
messages with images, tool schemas, stop reasons and token usage."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import ollama

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
    content_text,
)
from llama_stack.apis.errors import InvalidRequest
from llama_stack.apis.inference import Usage
from llama_stack.distribution.outbound import OutboundPolicy
from llama_stack.models.images import fetch_image
from llama_stack.models.openai.requests import tool_schema


def sampling_options(params: SamplingParams) -> dict[str, Any]:
    """Ollama `options` for our sampling params, with the same meaning as the local provider's:
    temperature 0 (or the greedy strategy) is greedy, the strategy names the one truncation in
    force, and repetition penalty 1.0 means none. Every value is sent explicitly, since Ollama's
    own defaults (temperature 0.8, top_k 40, top_p 0.9, repeat_penalty 1.1) differ from ours."""
    temperature = params.temperature or 0.0
    options: dict[str, Any] = {"repeat_penalty": params.repetition_penalty or 1.0}
    if params.strategy == SamplingStrategy.greedy or temperature <= 0.0:
        options["temperature"] = 0.0
    elif params.strategy == SamplingStrategy.top_k:
        options |= {"temperature": temperature, "top_k": params.top_k or 0, "top_p": 1.0}
    else:
        options |= {"temperature": temperature, "top_p": params.top_p or 1.0, "top_k": params.top_k or 0}
    if params.max_tokens:
        options["num_predict"] = params.max_tokens
    if params.seed is not None:
        options["seed"] = params.seed
    return options


def stop_reason(done_reason: str | None, *, tool_call: bool = False) -> StopReason:
    """Ollama's done_reason: "length" when num_predict or the context ran out, "stop" at a stop
    token. Raw output never shows which stop token, so a tool call reads as <|eom_id|>."""
    if done_reason == "length":
        return StopReason.out_of_tokens
    return StopReason.end_of_message if tool_call else StopReason.end_of_turn


def usage(part: ollama.GenerateResponse | ollama.ChatResponse | ollama.EmbedResponse) -> Usage:
    # Ollama leaves prompt_eval_count out when the whole prompt came from its cache.
    completion = getattr(part, "eval_count", None) or 0
    return Usage(prompt_tokens=part.prompt_eval_count or 0, completion_tokens=completion)


# --- /api/chat messages ---------------------------------------------------------------------------


async def image_base64(item: ImageContentItem, outbound: OutboundPolicy) -> str:
    """An image as the base64 Ollama takes: inline data as is, a data: URL decoded, an http(s)
    URL downloaded under the server's outbound policy (Ollama itself only reads images inline)."""
    if item.data is not None:
        return item.data
    uri = item.url.uri if item.url is not None else ""
    if uri.startswith("data:"):
        return uri.partition(",")[2]
    if uri.startswith(("http://", "https://")):
        return base64.b64encode(await fetch_image(uri, outbound)).decode()
    raise InvalidRequest("an image must be given as base64 `data`, a data: URL or an http(s) URL")


async def chat_content(content: InterleavedContent, outbound: OutboundPolicy) -> tuple[str, list[str]]:
    items = content if isinstance(content, list) else [content]
    texts: list[str] = []
    images: list[str] = []
    for item in items:
        if isinstance(item, str):
            texts.append(item)
        elif isinstance(item, TextContentItem):
            texts.append(item.text)
        else:
            images.append(await image_base64(item, outbound))
    return "".join(texts), images


async def chat_messages(messages: list[Message], outbound: OutboundPolicy) -> list[dict[str, Any]]:
    """Messages for /api/chat, which Ollama renders with the model's own template."""
    result: list[dict[str, Any]] = []
    for message in messages:
        text, images = await chat_content(message.content, outbound)
        entry: dict[str, Any] = {"role": _ROLES[type(message)], "content": text}
        if images:
            entry["images"] = images
        if isinstance(message, UserMessage) and message.context is not None:
            entry["content"] = f"{text}\n\n{content_text(message.context)}"
        elif isinstance(message, ToolResponseMessage):
            entry["tool_name"] = message.tool_name
        elif isinstance(message, CompletionMessage) and message.tool_calls:
            entry["tool_calls"] = [
                {"function": {"name": call.tool_name, "arguments": call.arguments}} for call in message.tool_calls
            ]
        result.append(entry)
    return result


_ROLES: dict[type, str] = {
    UserMessage: "user",
    SystemMessage: "system",
    ToolResponseMessage: "tool",
    CompletionMessage: "assistant",
}


def chat_tools(tools: list[ToolDefinition]) -> list[dict[str, Any]]:
    """Tool definitions as the JSON-schema functions of /api/chat's `tools` (OpenAI's shape)."""
    return [tool_schema(tool) for tool in tools]


def tool_calls_of(message: ollama.Message) -> list[ToolCall]:
    return [
        ToolCall(call_id=str(uuid.uuid4()), tool_name=call.function.name, arguments=dict(call.function.arguments))
        for call in message.tool_calls or []
    ]
