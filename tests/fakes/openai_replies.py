"""What the fake OpenAI-compatible server answers: request checks and deterministic replies.

Pure functions over the request body, kept apart from the HTTP layer (tests/fakes/openai_server.py)
so each rule reads on its own. A "token" is a whitespace-separated word; every count the fake
reports (max_tokens, usage, logprobs) counts those.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.guard_replies import guard_verdict, is_guard_model

ROLES = {"system", "developer", "user", "assistant", "tool"}
WEATHER_QUESTION = "weather in paris"
# Log-probabilities of the alternatives the fake offers after each chosen token.
ALTERNATIVES = ("the", "a", "and", "of", "to", "in", "is", "it", "that", "for")


class BadRequest(Exception):
    """A request OpenAI would answer with 400; `param` names the offending field."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


@dataclass
class Reply:
    tokens: list[str]
    finish_reason: str
    prompt_tokens: int
    tool_calls: list[dict[str, str]] = field(default_factory=list)  # id, name, arguments (JSON text)

    @property
    def text(self) -> str:
        return "".join(self.tokens)


def word_count(text: str) -> int:
    return len(text.split())


def as_tokens(words: list[str]) -> list[str]:
    """Words as streamed: every word after the first carries its leading space."""
    return [word if i == 0 else " " + word for i, word in enumerate(words)]


def _content_text(content: Any, path: str) -> tuple[str, int]:
    """The text of a message's content and how many images it holds; raises on malformed parts."""
    if content is None or isinstance(content, str):
        return content or "", 0
    if not isinstance(content, list):
        raise BadRequest(f"{path} must be a string or an array of content parts", path)
    texts, images = [], 0
    for i, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind == "image_url" and isinstance(part.get("image_url"), dict):
            _check_image_url(part["image_url"].get("url"), f"{path}[{i}].image_url.url")
            images += 1
        else:
            raise BadRequest(f"{path}[{i}] is not a valid content part", f"{path}[{i}]")
    return " ".join(texts), images


def _check_image_url(url: Any, path: str) -> None:
    if not isinstance(url, str):
        raise BadRequest(f"{path} must be a string", path)
    if url.startswith(("http://", "https://")):
        return
    if not url.startswith("data:image/") or ";base64," not in url:
        raise BadRequest(f"{path} must be an http(s) URL or a base64 data URL of an image", path)
    try:
        base64.b64decode(url.split(";base64,", 1)[1], validate=True)
    except ValueError as e:
        raise BadRequest(f"{path} holds invalid base64 image data", path) from e


def check_sampling(body: dict[str, Any]) -> None:
    temperature = body.get("temperature")
    if temperature is not None and not 0 <= temperature <= 2:
        raise BadRequest("temperature must be between 0 and 2", "temperature")
    top_p = body.get("top_p")
    if top_p is not None and not 0 <= top_p <= 1:
        raise BadRequest("top_p must be between 0 and 1", "top_p")
    max_tokens = body.get("max_tokens", body.get("max_completion_tokens"))
    if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
        raise BadRequest("max_tokens must be a positive integer", "max_tokens")


def chat_reply(body: dict[str, Any]) -> Reply:
    """The answer to a /v1/chat/completions body, or BadRequest where OpenAI would refuse it."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages must be a non-empty array", "messages")
    check_sampling(body)
    if body.get("top_logprobs") is not None and not body.get("logprobs"):
        raise BadRequest("top_logprobs requires logprobs to be true", "top_logprobs")
    tools = {t["function"]["name"]: t["function"] for t in body.get("tools") or []}
    if body.get("tool_choice") not in (None, "none") and not tools:
        raise BadRequest("tool_choice is only allowed when tools are specified", "tool_choice")

    call_ids: set[str] = set()
    prompt_tokens, images, last_text, last_role = 0, 0, "", ""
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ROLES:
            raise BadRequest(f"messages[{i}].role must be one of {sorted(ROLES)}", f"messages[{i}].role")
        text, count = _content_text(message.get("content"), f"messages[{i}].content")
        for call in message.get("tool_calls") or []:
            if not call.get("id") or not isinstance(call.get("function", {}).get("arguments"), str):
                raise BadRequest(f"messages[{i}].tool_calls need an id and string arguments", f"messages[{i}]")
            call_ids.add(call["id"])
        if role == "tool" and message.get("tool_call_id") not in call_ids:
            raise BadRequest(
                f"messages[{i}]: a tool message must answer a preceding assistant tool call", f"messages[{i}]"
            )
        prompt_tokens += word_count(text) + count
        images += count
        last_text, last_role = text, role

    max_tokens = body.get("max_tokens") or body.get("max_completion_tokens")
    verdict = guard_verdict(last_text) if is_guard_model(str(body.get("model"))) and last_role == "user" else None
    if verdict is not None:  # a Llama Guard model judging a conversation (tests/fakes/guard_replies.py)
        return Reply(tokens=re.findall(r"\s*\S+", verdict), finish_reason="stop", prompt_tokens=prompt_tokens)
    forced = _forced_tool(body.get("tool_choice"), tools)
    if forced or ("get_weather" in tools and last_role == "user" and WEATHER_QUESTION in last_text.lower()):
        name = forced or "get_weather"
        arguments = {"city": "Paris"} if name == "get_weather" else schema_instance(tools[name].get("parameters"))
        words, finish = json.dumps(arguments).split(" "), "tool_calls"
        if max_tokens is not None and len(words) > max_tokens:  # cut off mid-arguments, as OpenAI does
            words, finish = words[:max_tokens], "length"
        call = {"id": f"call_{prompt_tokens:04d}{len(messages):04d}", "name": name, "arguments": " ".join(words)}
        return Reply(tokens=[], finish_reason=finish, prompt_tokens=prompt_tokens, tool_calls=[call])

    response_format = body.get("response_format") or {}
    if response_format.get("type") == "json_schema":
        words = [json.dumps(schema_instance(response_format["json_schema"].get("schema")))]
    elif response_format.get("type") == "json_object":
        words = ['{"answer":', '"fake"}']
    else:
        seen = f"I see {images} image{'s' if images != 1 else ''}. " if images else ""
        prefix = "The tool said:" if last_role == "tool" else "This is the fake reply to:"
        words = (seen + prefix).split() + last_text.split()
    tokens = as_tokens(words)
    if max_tokens is not None and len(tokens) > max_tokens:
        return Reply(tokens=tokens[:max_tokens], finish_reason="length", prompt_tokens=prompt_tokens)
    return Reply(tokens=tokens, finish_reason="stop", prompt_tokens=prompt_tokens)


def _forced_tool(tool_choice: Any, tools: dict[str, Any]) -> str | None:
    if tool_choice == "required":
        return next(iter(tools))
    if isinstance(tool_choice, dict):
        name = tool_choice.get("function", {}).get("name")
        if name not in tools:
            raise BadRequest(f"tool_choice names an unknown tool: {name}", "tool_choice")
        return str(name)
    return None


def completion_reply(body: dict[str, Any]) -> Reply:
    prompt = body.get("prompt")
    if isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise BadRequest("prompt must be a string or an array of strings", "prompt")
    check_sampling(body)
    tokens = as_tokens(["and", "then", *prompt.split()[-8:], "again."])
    max_tokens = body.get("max_tokens") or 16  # OpenAI's default for /v1/completions
    if len(tokens) > max_tokens:
        return Reply(tokens=tokens[:max_tokens], finish_reason="length", prompt_tokens=word_count(prompt))
    return Reply(tokens=tokens, finish_reason="stop", prompt_tokens=word_count(prompt))


def schema_instance(schema: Any) -> Any:
    """A value valid under a (simple) JSON schema: enums, objects, arrays and scalars."""
    if not isinstance(schema, dict):
        return {}
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        properties = schema.get("properties", {})
        return {name: schema_instance(sub) for name, sub in properties.items()}
    if kind == "array":
        return [schema_instance(schema.get("items", {}))] * schema.get("minItems", 0)
    return {"string": "Paris", "integer": 1, "number": 1.5, "boolean": True, "null": None}.get(kind, "Paris")


def _logprob(token: str, rank: int) -> float:
    return -round(0.1 * (rank + 1) + (len(token) % 7) / 100, 4)


def _entry(token: str, rank: int) -> dict[str, Any]:
    return {"token": token, "logprob": _logprob(token, rank), "bytes": list(token.encode())}


def chat_logprobs(tokens: list[str], top: int) -> list[dict[str, Any]]:
    """Chat logprobs: each token with its `top` most likely tokens (itself first)."""
    alternatives = [_entry(a, rank + 1) for rank, a in enumerate(ALTERNATIVES)][: max(top - 1, 0)]
    return [{**_entry(t, 0), "top_logprobs": [_entry(t, 0), *alternatives] if top else []} for t in tokens]


def completion_logprobs(tokens: list[str], top: int, offset: int = 0) -> dict[str, Any]:
    tops = [
        {token: _logprob(token, 0), **{a: _logprob(a, r + 1) for r, a in enumerate(ALTERNATIVES[: top - 1])}}
        for token in tokens
    ]
    offsets = [offset + sum(len(t) for t in tokens[:i]) for i in range(len(tokens))]
    return {
        "tokens": tokens,
        "token_logprobs": [_logprob(t, 0) for t in tokens],
        "top_logprobs": tops,
        "text_offset": offsets,
    }


def embedding(text: str, dimensions: int) -> list[float]:
    """A deterministic unit vector per text: the same text always gives the same vector."""
    digest = hashlib.sha256(text.encode()).digest()
    raw = [(digest[i % len(digest)] - 127.5) / 127.5 for i in range(dimensions)]
    norm = math.sqrt(sum(x * x for x in raw)) or 1.0
    return [x / norm for x in raw]
