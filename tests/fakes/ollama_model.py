"""The models the fake Ollama server holds, and the scripted "model" behind its answers:
deterministic text, one word per token.

It reads a raw Llama 3 prompt (or /api/chat messages) the way a Llama model would see it:

- asked "What is the weather in Paris?" with a `get_weather` tool in the prompt, it answers with
  a tool call in the format the prompt asked for (json, function_tag or python_list), as a Llama
  3.x model does before emitting <|eom_id|>;
- asked to "count to N", it counts (long answers, to test cancellation and num_predict);
- after a tool result (an `ipython` turn), it reports that result;
- with a JSON schema as `format`, it answers with JSON valid under that schema;
- otherwise it says what it was asked, and how many images it saw.

Embeddings are a hashed bag of words: deterministic, L2-normalised, as wide as the model says.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from typing import Any

EMBEDDING_DIM = 64

_SPECIAL = re.compile(r"<\|[a-z_]+\|>")
_TOKEN = re.compile(r"<\|[a-z_]+\|>|\w+|[^\w\s]")
_TURN = re.compile(
    r"<\|start_header_id\|>(?P<role>[a-z]+)<\|end_header_id\|>\n\n(?P<content>.*?)(?:<\|eot_id\|>|<\|eom_id\|>|$)",
    re.DOTALL,
)
_COUNT = re.compile(r"count to (\d+)", re.IGNORECASE)
_WEATHER_QUESTION = re.compile(r"weather in paris", re.IGNORECASE)


# --- the models a fake Ollama can hold ----------------------------------------------------------

LLAMA3_TEMPLATE = (
    "{{- if .System }}<|start_header_id|>system<|end_header_id|>\n\n{{ .System }}<|eot_id|>{{ end }}"
    "{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n{{ .Content }}<|eot_id|>"
    "{{ end }}<|start_header_id|>assistant<|end_header_id|>\n\n"
)


@dataclass(frozen=True)
class FakeModel:
    name: str
    family: str = "llama"
    parameter_size: str = "1.2B"
    quantization: str = "F16"
    capabilities: tuple[str, ...] = ("completion", "tools")
    template: str = LLAMA3_TEMPLATE
    context_length: int = 131072
    embedding_length: int = 2048
    size: int = 2_479_595_870


def llama_text(name: str) -> FakeModel:
    return FakeModel(name)


def llama_vision(name: str) -> FakeModel:
    return FakeModel(name, family="mllama", parameter_size="10.7B", capabilities=("completion", "vision"))


def embedder(name: str, dimension: int = 64) -> FakeModel:
    return FakeModel(
        name, family="bert", parameter_size="23M", capabilities=("embedding",), template="{{ .Prompt }}",
        context_length=512, embedding_length=dimension, size=45_960_996,
    )  # fmt: skip


# --- the scripted answers -------------------------------------------------------------------------


def count_tokens(text: str) -> int:
    """A stand-in for a tokenizer: special tokens, words and punctuation count one each."""
    return len(_TOKEN.findall(text))


def split_tokens(text: str) -> list[str]:
    """The answer as the stream pieces a model would emit: each word with its leading space."""
    return re.findall(r"\s*\S+", text) or ([text] if text else [])


def raw_turns(prompt: str) -> list[tuple[str, str]]:
    """(role, content) of each turn in a raw Llama 3 prompt; empty for a plain completion."""
    return [(m.group("role"), m.group("content")) for m in _TURN.finditer(prompt) if m.group("content")]


def tool_call_format(prompt: str) -> str | None:
    """Which tool-call format the tool instructions in `prompt` ask for; None without get_weather."""
    if "get_weather" not in prompt:
        return None
    if "<function=example_function_name>" in prompt:
        return "function_tag"
    if "[func_name1(" in prompt:
        return "python_list"
    return "json"


def weather_call(fmt: str) -> str:
    if fmt == "function_tag":
        return '<function=get_weather>{"city": "Paris"}</function>'
    if fmt == "python_list":
        return '[get_weather(city="Paris")]'
    return '{"type": "function", "name": "get_weather", "parameters": {"city": "Paris"}}'


def instance_of(schema: dict[str, Any]) -> Any:
    """A small value valid under a JSON schema (objects, arrays, scalars, enums, const)."""
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type", "object")
    kind = kind[0] if isinstance(kind, list) else kind
    if kind == "object":
        props = schema.get("properties", {})
        return {name: instance_of(sub) for name, sub in props.items()}
    if kind == "array":
        return [instance_of(schema.get("items", {"type": "string"}))] * max(1, schema.get("minItems", 1))
    if kind == "integer":
        return max(1, schema.get("minimum", 1))
    if kind == "number":
        return float(max(1.5, schema.get("minimum", 1.5)))
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return "fake"


def reply_text(last_role: str, last_text: str, *, tool_format: str | None, images: int, fmt: Any) -> tuple[str, bool]:
    """(answer, whether it is a tool call) for the conversation's last turn."""
    if isinstance(fmt, dict):
        return json.dumps(instance_of(fmt)), False
    if fmt == "json":
        return json.dumps({"answer": last_text[:40]}), False
    if last_role in ("ipython", "tool"):
        return f"The tool said: {last_text.strip()}", False
    if tool_format is not None and _WEATHER_QUESTION.search(last_text):
        return weather_call(tool_format), True
    count = _COUNT.search(last_text)
    if count:
        return " ".join(str(i) for i in range(1, int(count.group(1)) + 1)), False
    seen = f" I see {images} image{'s' if images != 1 else ''}." if images else ""
    return f"You said: {last_text.strip()}.{seen} This is the fake Ollama model answering.", False


def raw_reply(prompt: str, fmt: Any) -> tuple[str, bool]:
    """The answer to a raw prompt: a Llama 3 chat, or a plain text to continue."""
    turns = raw_turns(prompt)
    if not turns:
        text = _SPECIAL.sub("", prompt).strip()
        # A base model runs on until num_predict stops it; this one rambles for 30 tokens.
        return f" and so {text.split()[-1] if text else 'it'} goes on{' and on' * 12}, deterministically.", False
    role, content = turns[-1]
    return reply_text(role, content, tool_format=tool_call_format(prompt), images=0, fmt=fmt)


def embed(text: str, dim: int = EMBEDDING_DIM) -> list[float]:
    vector = [0.0] * dim
    for word in re.findall(r"\w+", text.lower()):
        digest = hashlib.sha256(word.encode()).digest()
        sign = 1.0 if digest[4] & 1 else -1.0
        vector[int.from_bytes(digest[:4], "big") % dim] += sign
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]
