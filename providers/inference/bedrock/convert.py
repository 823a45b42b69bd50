"""Our Inference types <-> Bedrock's Converse API (and Llama's InvokeModel body for completions).

Bedrock wants strictly alternating user/assistant turns: tool results travel as `toolResult`
blocks of a user turn, and consecutive turns of one role are merged. Tool-call arguments that
are not a JSON object become a `failure` ToolCallDelta in a stream, as in openai_compat.
"""

from __future__ import annotations

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
    ToolChoice,
    ToolResponseMessage,
    UserMessage,
    content_text,
)
from llama_stack.apis.errors import InvalidRequest
from llama_stack.apis.inference import (
    ChatCompletionEventType,
    ChatCompletionRequest,
    ChatCompletionResponse,
    ChatCompletionResponseEvent,
    ChatCompletionResponseStreamChunk,
    ToolCallDelta,
    ToolCallParseStatus,
    Usage,
)
from llama_stack.models.images import image_bytes

from ..remote_common import tool_parameters_schema

PROVIDER = "remote::bedrock"
STOP_REASONS = {
    "end_turn": StopReason.end_of_turn,
    "stop_sequence": StopReason.end_of_turn,
    "tool_use": StopReason.end_of_message,
    "max_tokens": StopReason.out_of_tokens,
    "length": StopReason.out_of_tokens,  # InvokeModel's Llama body
}
IMAGE_FORMATS = {b"\x89PNG": "png", b"\xff\xd8\xff": "jpeg", b"GIF8": "gif", b"RIFF": "webp"}


def stop_reason(reason: str | None) -> StopReason:
    return STOP_REASONS.get(reason or "end_turn", StopReason.end_of_turn)


def usage(raw: dict[str, Any] | None) -> Usage | None:
    if not raw:
        return None
    return Usage(prompt_tokens=raw.get("inputTokens", 0), completion_tokens=raw.get("outputTokens", 0))


# --- requests ------------------------------------------------------------------------------------


def _image_block(item: ImageContentItem) -> dict[str, Any]:
    data = image_bytes(item)  # URLs were fetched beforehand (llama_stack.models.images.inline_images)
    fmt = next((f for magic, f in IMAGE_FORMATS.items() if data.startswith(magic)), None)
    if fmt is None:
        raise InvalidRequest(f"{PROVIDER} takes png, jpeg, gif or webp images")
    return {"image": {"format": fmt, "source": {"bytes": data}}}


def content_blocks(content: InterleavedContent) -> list[dict[str, Any]]:
    items = content if isinstance(content, list) else [content]
    blocks: list[dict[str, Any]] = []
    for item in items:
        if isinstance(item, ImageContentItem):
            blocks.append(_image_block(item))
        else:
            text = item if isinstance(item, str) else item.text if isinstance(item, TextContentItem) else ""
            if text.strip():  # Bedrock refuses blank text blocks
                blocks.append({"text": text})
    return blocks


def _turn(message: Message) -> tuple[str, list[dict[str, Any]]]:
    if isinstance(message, UserMessage):
        blocks = content_blocks(message.content)
        if message.context is not None:
            blocks += content_blocks(message.context)
        return "user", blocks
    if isinstance(message, ToolResponseMessage):
        result = {"toolUseId": message.call_id, "content": [{"text": content_text(message.content) or "(empty)"}]}
        return "user", [{"toolResult": result}]
    assert isinstance(message, CompletionMessage)
    blocks = content_blocks(message.content)
    for call in message.tool_calls:
        blocks.append({"toolUse": {"toolUseId": call.call_id, "name": call.tool_name, "input": call.arguments}})
    return "assistant", blocks


def converse_messages(messages: list[Message]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(system blocks, alternating turns)."""
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for message in messages:
        if isinstance(message, SystemMessage):
            system += content_blocks(message.content)
            continue
        role, blocks = _turn(message)
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"] += blocks
        else:
            turns.append({"role": role, "content": blocks})
    return system, turns


def inference_config(params: SamplingParams) -> dict[str, Any]:
    config: dict[str, Any] = {}
    if params.max_tokens:
        config["maxTokens"] = params.max_tokens
    if params.strategy == SamplingStrategy.greedy:
        config["temperature"] = 0.0
    else:
        if params.temperature is not None:
            config["temperature"] = min(params.temperature, 1.0)  # Bedrock's range is 0..1
        if params.strategy == SamplingStrategy.top_p and params.top_p is not None:
            config["topP"] = params.top_p
    return config


def refuse_unsupported(request: ChatCompletionRequest) -> None:
    if request.response_format is not None:
        raise InvalidRequest(f"{PROVIDER} does not support response_format; describe the JSON in the prompt")
    if request.logprobs is not None:
        raise InvalidRequest(f"{PROVIDER} does not return logprobs")


def converse_params(request: ChatCompletionRequest, model: str) -> dict[str, Any]:
    refuse_unsupported(request)
    system, turns = converse_messages(request.messages)
    params: dict[str, Any] = {"modelId": model, "messages": turns}
    if system:
        params["system"] = system
    config = inference_config(request.sampling_params)
    if config:
        params["inferenceConfig"] = config
    if request.tools:
        tools = [
            {
                "toolSpec": {
                    "name": tool.tool_name,
                    "description": tool.description or tool.tool_name,
                    "inputSchema": {"json": tool_parameters_schema(tool)},
                }
            }
            for tool in request.tools
        ]
        choice: dict[str, Any] = {"any": {}} if request.tool_choice == ToolChoice.required else {"auto": {}}
        params["toolConfig"] = {"tools": tools, "toolChoice": choice}
    return params


def llama_completion_body(prompt: str, params: SamplingParams) -> dict[str, Any]:
    """InvokeModel's body for a Meta Llama model: a raw prompt, no chat template."""
    body: dict[str, Any] = {"prompt": prompt}
    config = inference_config(params)
    if "maxTokens" in config:
        body["max_gen_len"] = config["maxTokens"]
    if "temperature" in config:
        body["temperature"] = config["temperature"]
    if "topP" in config:
        body["top_p"] = config["topP"]
    return body


# --- responses -----------------------------------------------------------------------------------


def chat_response(response: dict[str, Any]) -> ChatCompletionResponse:
    blocks = response.get("output", {}).get("message", {}).get("content", [])
    text = "".join(block["text"] for block in blocks if "text" in block)
    calls = [
        ToolCall(call_id=use["toolUseId"], tool_name=use["name"], arguments=use.get("input") or {})
        for use in (block["toolUse"] for block in blocks if "toolUse" in block)
    ]
    message = CompletionMessage(content=text, stop_reason=stop_reason(response.get("stopReason")), tool_calls=calls)
    return ChatCompletionResponse(completion_message=message, usage=usage(response.get("usage")))


def _progress(delta: str | ToolCallDelta) -> ChatCompletionResponseStreamChunk:
    return ChatCompletionResponseStreamChunk(
        event=ChatCompletionResponseEvent(event_type=ChatCompletionEventType.progress, delta=delta)
    )


class ConverseStream:
    """ConverseStream events -> our chunks: text deltas, tool calls (started, argument fragments,
    then the parsed call when its block stops), and `complete` after the metadata event."""

    def __init__(self) -> None:
        self.tools: dict[int, dict[str, str]] = {}  # block index -> toolUseId, name, input so far
        self.stop: str | None = None
        self.usage: Usage | None = None

    def feed(self, event: dict[str, Any]) -> list[ChatCompletionResponseStreamChunk]:
        if "contentBlockStart" in event:
            start = event["contentBlockStart"]
            use = start.get("start", {}).get("toolUse")
            if use is not None:
                self.tools[start["contentBlockIndex"]] = {"id": use["toolUseId"], "name": use["name"], "input": ""}
                return [_progress(ToolCallDelta(content="", parse_status=ToolCallParseStatus.started))]
        elif "contentBlockDelta" in event:
            block = event["contentBlockDelta"]
            delta = block.get("delta", {})
            if "text" in delta:
                return [_progress(delta["text"])] if delta["text"] else []
            fragment = delta.get("toolUse", {}).get("input")
            tool = self.tools.get(block["contentBlockIndex"])
            if fragment and tool is not None:
                tool["input"] += fragment
                return [_progress(ToolCallDelta(content=fragment, parse_status=ToolCallParseStatus.in_progress))]
        elif "contentBlockStop" in event:
            tool = self.tools.pop(event["contentBlockStop"]["contentBlockIndex"], None)
            if tool is not None:
                return [_progress(_finished_call(tool))]
        elif "messageStop" in event:
            self.stop = event["messageStop"].get("stopReason")
        elif "metadata" in event:
            self.usage = usage(event["metadata"].get("usage"))
        return []

    def finish(self) -> ChatCompletionResponseStreamChunk:
        event = ChatCompletionResponseEvent(
            event_type=ChatCompletionEventType.complete, delta="", stop_reason=stop_reason(self.stop), usage=self.usage
        )
        return ChatCompletionResponseStreamChunk(event=event)


def _finished_call(tool: dict[str, str]) -> ToolCallDelta:
    try:
        arguments = json.loads(tool["input"]) if tool["input"].strip() else {}
    except ValueError:
        arguments = None
    if not isinstance(arguments, dict):
        return ToolCallDelta(content=f"{tool['name']}({tool['input']})", parse_status=ToolCallParseStatus.failure)
    call = ToolCall(call_id=tool["id"], tool_name=tool["name"], arguments=arguments)
    return ToolCallDelta(content=call, parse_status=ToolCallParseStatus.success)
