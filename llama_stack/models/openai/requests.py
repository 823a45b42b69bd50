"""Requests both ways: an OpenAI body -> our Inference request (the /v1 face) and our request ->
an OpenAI body (the OpenAI-compatible provider), with the JSON schema of a tool's parameters."""

from __future__ import annotations

import base64
import json
from typing import Any, Protocol

from llama_stack.apis.common import (
    URL,
    BuiltinTool,
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
    ToolDefinition,
    ToolParamDefinition,
    ToolResponseMessage,
    UserMessage,
    content_has_image,
    content_text,
)
from llama_stack.apis.errors import InvalidRequest
from llama_stack.apis.inference import (
    ChatCompletionRequest,
    CompletionRequest,
    JsonSchemaResponseFormat,
    LogProbConfig,
    ResponseFormat,
)
from llama_stack.models.openai.answers import tool_call_body
from llama_stack.server import openai_types as oai

_IMAGE_MAGIC = {b"\x89PNG": "image/png", b"\xff\xd8\xff": "image/jpeg", b"GIF8": "image/gif", b"RIFF": "image/webp"}


class Upstream(Protocol):
    """What the outgoing body depends on: the upstream's name (for messages) and whether it takes
    sampling parameters beyond OpenAI's."""

    @property
    def provider_type(self) -> str: ...

    @property
    def extra_sampling(self) -> bool: ...


# OpenAI body -> ours (the /v1 face) ---------------------------------------------------------


def sampling(body: oai.SamplingFields, max_tokens: int | None) -> SamplingParams:
    """OpenAI's sampling fields -> ours."""
    if body.n not in (None, 1):
        raise InvalidRequest("n: only n=1 is supported")
    # OpenAI samples at temperature 1 unless told otherwise; temperature 0 means greedy.
    temperature = 1.0 if body.temperature is None else body.temperature
    if temperature == 0:
        return SamplingParams(strategy=SamplingStrategy.greedy, max_tokens=max_tokens, seed=body.seed)
    return SamplingParams(
        strategy=SamplingStrategy.top_p,
        temperature=temperature,
        top_p=1.0 if body.top_p is None else body.top_p,
        max_tokens=max_tokens,
        seed=body.seed,
    )


def stop_sequences(stop: str | list[str] | None) -> list[str]:
    sequences = [stop] if isinstance(stop, str) else list(stop or [])
    if len(sequences) > 4 or any(not s for s in sequences):
        raise InvalidRequest("stop: give at most 4 non-empty sequences")
    return sequences


def _content(content: str | list[oai.ContentPart] | None) -> InterleavedContent:
    if content is None or isinstance(content, str):
        return content or ""
    items: list[TextContentItem | ImageContentItem] = []
    for part in content:
        if part.type == "text":
            items.append(TextContentItem(text=part.text or ""))
        elif part.image_url is not None:
            items.append(ImageContentItem(url=URL(uri=part.image_url.url)))
        else:
            raise InvalidRequest("messages: an image_url part needs image_url.url")
    return items


def _arguments(raw: str, name: str) -> dict[str, Any]:
    try:
        arguments = json.loads(raw) if raw.strip() else {}
    except json.JSONDecodeError as e:
        raise InvalidRequest(f"messages: arguments of tool call '{name}' are not valid JSON") from e
    if not isinstance(arguments, dict):
        raise InvalidRequest(f"messages: arguments of tool call '{name}' must be a JSON object")
    return arguments


def to_messages(messages: list[oai.ChatMessage]) -> list[Message]:
    tool_names: dict[str, str] = {}
    converted: list[Message] = []
    for message in messages:
        if message.role in ("system", "developer"):
            converted.append(SystemMessage(content=_content(message.content)))
        elif message.role == "user":
            converted.append(UserMessage(content=_content(message.content)))
        elif message.role == "assistant":
            calls = [
                ToolCall(
                    call_id=c.id, tool_name=c.function.name, arguments=_arguments(c.function.arguments, c.function.name)
                )
                for c in message.tool_calls or []
            ]
            tool_names.update({c.call_id: c.tool_name for c in calls})
            stop = StopReason.end_of_message if calls else StopReason.end_of_turn
            converted.append(CompletionMessage(content=_content(message.content), tool_calls=calls, stop_reason=stop))
        else:
            call_id = message.tool_call_id or ""
            if call_id not in tool_names:
                raise InvalidRequest(f"messages: tool message answers unknown tool_call_id '{call_id}'")
            converted.append(
                ToolResponseMessage(call_id=call_id, tool_name=tool_names[call_id], content=_content(message.content))
            )
    return converted


def _tool_definition(spec: oai.ToolSpec) -> ToolDefinition:
    schema = spec.function.parameters or {}
    required = set(schema.get("required", []))
    parameters = {
        name: ToolParamDefinition(
            param_type=prop.get("type", "string") if isinstance(prop.get("type"), str) else "string",
            description=prop.get("description"),
            required=name in required,
            default=prop.get("default"),
        )
        for name, prop in (schema.get("properties") or {}).items()
    }
    return ToolDefinition(tool_name=spec.function.name, description=spec.function.description, parameters=parameters)


def _tools(body: oai.ChatCompletionsRequest) -> tuple[list[ToolDefinition], ToolChoice]:
    tools = [_tool_definition(t) for t in body.tools or []]
    choice = body.tool_choice
    if choice == "none":
        return [], ToolChoice.auto
    if isinstance(choice, oai.NamedToolChoice):
        chosen = [t for t in tools if t.tool_name == choice.function.name]
        if not chosen:
            raise InvalidRequest(f"tool_choice: no tool named '{choice.function.name}' in tools")
        return chosen, ToolChoice.required
    return tools, ToolChoice.required if choice == "required" else ToolChoice.auto


def to_chat_request(body: oai.ChatCompletionsRequest) -> ChatCompletionRequest:
    tools, tool_choice = _tools(body)
    response_format = None
    if body.response_format is not None and body.response_format.type != "text":
        spec = body.response_format.json_schema
        schema = spec.schema_ if spec is not None and spec.schema_ else {"type": "object"}
        response_format = JsonSchemaResponseFormat(json_schema=schema)
    logprobs = LogProbConfig(top_k=max(1, body.top_logprobs or 0)) if body.logprobs else None
    return ChatCompletionRequest(
        model_id=body.model,
        messages=to_messages(body.messages),
        sampling_params=sampling(body, body.max_completion_tokens or body.max_tokens),
        tools=tools,
        tool_choice=tool_choice,
        response_format=response_format,
        stream=body.stream,
        logprobs=logprobs,
    )


def to_completion_request(body: oai.CompletionsRequest) -> CompletionRequest:
    if isinstance(body.prompt, list):
        if len(body.prompt) != 1:
            raise InvalidRequest("prompt: only a single prompt per request is supported")
        prompt = body.prompt[0]
    else:
        prompt = body.prompt
    if body.echo:
        raise InvalidRequest("echo: not supported")
    if body.suffix:
        raise InvalidRequest("suffix: not supported")
    logprobs = LogProbConfig(top_k=body.logprobs) if body.logprobs else None
    return CompletionRequest(
        model_id=body.model,
        content=prompt,
        sampling_params=sampling(body, body.max_tokens),
        stream=body.stream,
        logprobs=logprobs,
    )


# Ours -> OpenAI body (the OpenAI-compatible provider) -----------------------------------------


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
        out["tool_calls"] = [tool_call_body(call) for call in message.tool_calls]
    return out


def _text(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def tool_schema(tool: ToolDefinition) -> dict[str, Any]:
    function: dict[str, Any] = {"name": tool.tool_name, "parameters": tool_parameters_schema(tool)}
    if tool.description:
        function["description"] = tool.description
    return {"type": "function", "function": function}


def sampling_body(params: SamplingParams, extra_sampling: bool) -> dict[str, Any]:
    """Ours -> OpenAI's sampling fields; `extra_sampling`: the upstream also takes top_k and
    repetition_penalty (vLLM, TGI, Together, Fireworks), beside OpenAI's parameters in the same body."""
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
    if extra_sampling:
        if params.strategy == SamplingStrategy.top_k and params.top_k:
            out["top_k"] = params.top_k
        if params.repetition_penalty not in (None, 1.0):
            out["repetition_penalty"] = params.repetition_penalty
    return out


def response_format(fmt: ResponseFormat, provider_type: str) -> dict[str, Any]:
    if not isinstance(fmt, JsonSchemaResponseFormat):
        raise InvalidRequest(f"{provider_type} supports response_format of type json_schema only, not {fmt.type}")
    return {"type": "json_schema", "json_schema": {"name": "response", "schema": fmt.json_schema}}


def chat_params(request: ChatCompletionRequest, model: str, upstream: Upstream) -> dict[str, Any]:
    params: dict[str, Any] = {"model": model, "messages": [chat_message(m) for m in request.messages]}
    params.update(sampling_body(request.sampling_params, upstream.extra_sampling))
    if request.tools:
        params["tools"] = [tool_schema(tool) for tool in request.tools]
        params["tool_choice"] = request.tool_choice.value
    if request.response_format is not None:
        params["response_format"] = response_format(request.response_format, upstream.provider_type)
    if request.logprobs is not None:
        params["logprobs"] = True
        params["top_logprobs"] = request.logprobs.top_k
    return params


def completion_params(request: CompletionRequest, model: str, upstream: Upstream) -> dict[str, Any]:
    if content_has_image(request.content):
        raise InvalidRequest(f"{upstream.provider_type} completion takes text only; send images with chat_completion")
    if request.response_format is not None:
        raise InvalidRequest(
            f"{upstream.provider_type} completion does not take response_format; use chat_completion for JSON output"
        )
    params: dict[str, Any] = {"model": model, "prompt": content_text(request.content)}
    params.update(sampling_body(request.sampling_params, upstream.extra_sampling))
    if request.logprobs is not None:
        params["logprobs"] = request.logprobs.top_k
    return params


# The JSON schema of a tool's parameters (also what Bedrock takes) ------------------------------

JSON_TYPES = {
    "str": "string",
    "string": "string",
    "int": "integer",
    "integer": "integer",
    "float": "number",
    "number": "number",
    "bool": "boolean",
    "boolean": "boolean",
    "list": "array",
    "array": "array",
    "dict": "object",
    "object": "object",
}
# Builtin tools reach a remote backend as plain functions with these parameters.
BUILTIN_PARAMETERS = {
    BuiltinTool.brave_search: ("query", "the search query"),
    BuiltinTool.wolfram_alpha: ("query", "the question for Wolfram Alpha"),
    BuiltinTool.photogen: ("query", "a description of the image to make"),
    BuiltinTool.code_interpreter: ("code", "the Python code to run"),
}


def tool_parameters_schema(tool: ToolDefinition) -> dict[str, Any]:
    """The JSON schema of a tool's parameters (`list[str]` -> array, unknown types -> string)."""
    properties: dict[str, Any] = {}
    required: list[str] = []
    if tool.tool_name in BUILTIN_PARAMETERS and tool.parameters is None:
        name, description = BUILTIN_PARAMETERS[BuiltinTool(tool.tool_name)]
        properties[name] = {"type": "string", "description": description}
        required.append(name)
    for name, param in (tool.parameters or {}).items():
        prop: dict[str, Any] = {"type": JSON_TYPES.get(param.param_type.split("[")[0].lower(), "string")}
        if param.description:
            prop["description"] = param.description
        if param.default is not None:
            prop["default"] = param.default
        properties[name] = prop
        if param.required:
            required.append(name)
    return {"type": "object", "properties": properties, "required": required}
