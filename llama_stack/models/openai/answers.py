"""Answers both ways: ours -> OpenAI's bodies (the /v1 face) and OpenAI's -> ours (the provider).

Tool-call arguments that are not a JSON object (the model wrote broken JSON, or was cut off by
max_tokens) do not become a ToolCall: a non-streaming answer keeps the raw call as text in the
message content, so the caller sees what the model wrote and no agent runs a half-parsed call.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from llama_stack.apis.common import CompletionMessage, StopReason, ToolCall
from llama_stack.apis.errors import UpstreamError
from llama_stack.apis.inference import (
    ChatCompletionResponse,
    CompletionResponse,
    EmbeddingsResponse,
    TokenLogProbs,
    Usage,
)


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def now() -> int:
    return int(time.time())


# Finish reasons ------------------------------------------------------------------------------

STOP_REASONS = {
    "stop": StopReason.end_of_turn,
    "length": StopReason.out_of_tokens,
    "tool_calls": StopReason.end_of_message,
    "function_call": StopReason.end_of_message,
}


def finish_reason(stop: StopReason | None, has_tool_calls: bool) -> str:
    """Ours -> OpenAI's."""
    if has_tool_calls:
        return "tool_calls"
    return "length" if stop == StopReason.out_of_tokens else "stop"


def stop_reason(finish: str | None) -> StopReason:
    """OpenAI's -> ours."""
    return STOP_REASONS.get(finish or "stop", StopReason.end_of_turn)


# Usage ----------------------------------------------------------------------------------------


def usage_body(usage: Usage | None) -> dict[str, int] | None:
    if usage is None:
        return None
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


def usage(raw: dict[str, Any] | None) -> Usage | None:
    if raw is None:
        return None
    return Usage(prompt_tokens=raw["prompt_tokens"], completion_tokens=raw.get("completion_tokens") or 0)


# Tool calls -----------------------------------------------------------------------------------


def tool_call_body(call: ToolCall, index: int | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": call.call_id,
        "type": "function",
        "function": {"name": call.tool_name, "arguments": json.dumps(call.arguments)},
    }
    return body if index is None else {"index": index, **body}


def parse_arguments(raw: str) -> dict[str, Any] | None:
    """A tool call's arguments as a JSON object, or None when they are not one."""
    if not raw.strip():
        return {}
    try:
        arguments = json.loads(raw)
    except ValueError:
        return None
    return arguments if isinstance(arguments, dict) else None


# Logprobs -------------------------------------------------------------------------------------


def chat_logprobs_body(logprobs: list[TokenLogProbs] | None) -> dict[str, Any] | None:
    """Ours -> a choice's `logprobs`. Llama Stack reports only the top-k of each step; the most
    likely of them stands in for the sampled token."""
    if not logprobs:
        return None
    content = []
    for step in logprobs:
        ranked = sorted(step.logprobs_by_token.items(), key=lambda item: -item[1])
        top = [{"token": t, "logprob": lp, "bytes": list(t.encode())} for t, lp in ranked]
        content.append({**top[0], "top_logprobs": top} if top else {"token": "", "logprob": 0.0, "top_logprobs": []})
    return {"content": content}


def chat_logprobs(logprobs: dict[str, Any] | None) -> list[TokenLogProbs] | None:
    """A choice's `logprobs` ({"content": [{token, logprob, top_logprobs}, ...]}) -> ours."""
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


def completion_logprobs(choice: dict[str, Any]) -> list[TokenLogProbs] | None:
    logprobs = choice.get("logprobs")
    if logprobs is None:
        return None
    if logprobs.get("top_logprobs"):
        return [TokenLogProbs(logprobs_by_token=dict(top)) for top in logprobs["top_logprobs"]]
    pairs = zip(logprobs.get("tokens") or (), logprobs.get("token_logprobs") or (), strict=False)
    return [TokenLogProbs(logprobs_by_token={token: value}) for token, value in pairs]


# Whole answers from an upstream ----------------------------------------------------------------


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


# Stop sequences (the /v1 face applies them to text) --------------------------------------------


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
