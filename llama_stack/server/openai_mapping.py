"""Translation between OpenAI's bodies and the stack's inference types. Pure functions and one
small stream translator: no HTTP here."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from llama_stack.apis.common import (
    URL,
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
)
from llama_stack.apis.errors import InvalidRequest
from llama_stack.apis.inference import (
    ChatCompletionRequest,
    CompletionRequest,
    JsonSchemaResponseFormat,
    LogProbConfig,
    TokenLogProbs,
    Usage,
)
from llama_stack.server import openai_types as oai


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def now() -> int:
    return int(time.time())


# Requests -------------------------------------------------------------------------------------


def sampling(body: oai.SamplingFields, max_tokens: int | None) -> SamplingParams:
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


# Responses ------------------------------------------------------------------------------------


def finish_reason(stop: StopReason | None, has_tool_calls: bool) -> str:
    if has_tool_calls:
        return "tool_calls"
    return "length" if stop == StopReason.out_of_tokens else "stop"


def usage_body(usage: Usage | None) -> dict[str, int] | None:
    if usage is None:
        return None
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


def tool_call_body(call: ToolCall, index: int | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": call.call_id,
        "type": "function",
        "function": {"name": call.tool_name, "arguments": json.dumps(call.arguments)},
    }
    return body if index is None else {"index": index, **body}


def chat_logprobs(logprobs: list[TokenLogProbs] | None) -> dict[str, Any] | None:
    """Llama Stack reports only the top-k of each step; the most likely of them stands in for
    the sampled token."""
    if not logprobs:
        return None
    content = []
    for step in logprobs:
        ranked = sorted(step.logprobs_by_token.items(), key=lambda item: -item[1])
        top = [{"token": t, "logprob": lp, "bytes": list(t.encode())} for t, lp in ranked]
        content.append({**top[0], "top_logprobs": top} if top else {"token": "", "logprob": 0.0, "top_logprobs": []})
    return {"content": content}


def cut_at_stop(text: str, stops: list[str]) -> tuple[str, bool]:
    cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


class StopSequenceFilter:
    """Streams text through, holding back just enough to catch a stop sequence split across
    deltas. `feed` returns the text safe to emit and whether a stop sequence was reached."""

    def __init__(self, stops: list[str]) -> None:
        self.stops = stops
        self.hold = max((len(s) for s in stops), default=1) - 1
        self.pending = ""

    def feed(self, delta: str) -> tuple[str, bool]:
        if not self.stops:
            return delta, False
        self.pending += delta
        text, stopped = cut_at_stop(self.pending, self.stops)
        if stopped:
            self.pending = ""
            return text, True
        keep = min(self.hold, len(self.pending))
        ready, self.pending = self.pending[: len(self.pending) - keep], self.pending[len(self.pending) - keep :]
        return ready, False

    def flush(self) -> str:
        text, self.pending = self.pending, ""
        return text
