"""Tool calls in Llama 3.x output: parse a finished answer, or a stream of text deltas.

A tool call starts at the first ``<|python_tag|>`` or ``<function=`` anywhere in the answer, or
at a ``{`` / ``[`` that opens the answer (leading whitespace aside). From there on the text is
parsed, in this order, as

- a builtin call: ``brave_search.call(query="...")`` (also wolfram_alpha, photogen);
- function_tag: ``<function=get_weather>{"city": "Paris"}</function>``;
- json: ``{"type": "function", "name": "get_weather", "parameters": {"city": "Paris"}}``
  (or a list of such objects; ``arguments`` is accepted for ``parameters``);
- python_list: ``[get_weather(city="Paris"), get_time(zone="CET")]``;
- after ``<|python_tag|>`` only: any other text is code for code_interpreter.

Every format is tried whatever the requested `tool_prompt_format`: models drift between them.
Text before the tool call stays the message content. Each ToolCall gets a fresh uuid4 call_id.
The llama-models helpers (`ToolUtils`, `is_valid_python_list`) do the format checks where they
can; callers should parse only when the request offered tools.
"""

from __future__ import annotations

import ast
import json
import re
import uuid
from typing import Any

from llama_models.llama3.tool_utils import ToolUtils, is_valid_python_list, parse_python_list_for_function_calls

from llama_stack.apis.common import BuiltinTool, CompletionMessage, StopReason, ToolCall, ToolPromptFormat
from llama_stack.apis.inference import ToolCallDelta, ToolCallParseStatus
from llama_stack.models.tool_prompts import check_tool_prompt_format, default_tool_prompt_format

__all__ = [
    "PYTHON_TAG",
    "ToolCallStreamParser",
    "check_tool_prompt_format",
    "default_tool_prompt_format",
    "parse_assistant_output",
    "parse_tool_calls",
]

PYTHON_TAG = "<|python_tag|>"
FUNCTION_TAG = "<function="
_MARKERS = (PYTHON_TAG, FUNCTION_TAG)
_FUNCTION_TAG_CALL = re.compile(r"<function=(?P<name>[^>]+)>(?P<args>\{.*?\})\s*(?:</function>)?", re.DOTALL)
_QUERY_TOOLS = frozenset({BuiltinTool.brave_search.value, BuiltinTool.wolfram_alpha.value, BuiltinTool.photogen.value})


def _call(name: str, arguments: dict[str, Any]) -> ToolCall:
    return ToolCall(call_id=str(uuid.uuid4()), tool_name=name, arguments=arguments)


def _builtin_call(text: str) -> list[ToolCall] | None:
    try:
        node = ast.parse(text.strip(), mode="eval").body
    except SyntaxError:
        node = None
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "call"
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id in _QUERY_TOOLS
    ):
        try:
            args = {kw.arg: ast.literal_eval(kw.value) for kw in node.keywords if kw.arg is not None}
        except ValueError:
            return None
        return [_call(node.func.value.id, args)]
    found = ToolUtils.maybe_extract_builtin_tool_call(text)  # llama-models' looser regex
    if found is not None and found[0] in _QUERY_TOOLS and text.strip().startswith(found[0]):
        return [_call(found[0], {"query": found[1]})]
    return None


def _function_tag_calls(text: str) -> list[ToolCall] | None:
    calls = []
    for match in _FUNCTION_TAG_CALL.finditer(text):
        try:
            args = json.loads(match.group("args"))
        except json.JSONDecodeError:
            return None
        if not isinstance(args, dict):
            return None
        calls.append(_call(match.group("name").strip(), args))
    leftover = _FUNCTION_TAG_CALL.sub("", text).strip()
    return calls if calls and not leftover else None


def _json_calls(text: str) -> list[ToolCall] | None:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return None
    items = value if isinstance(value, list) and value else [value]
    calls = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            return None
        if item.get("type", "function") != "function":
            return None
        args = item.get("parameters", item.get("arguments", {}))
        if isinstance(args, str):  # OpenAI style: arguments as a JSON string
            try:
                args = json.loads(args)
            except json.JSONDecodeError:
                return None
        if not isinstance(args, dict):
            return None
        calls.append(_call(item["name"], args))
    return calls


def _python_list_calls(text: str) -> list[ToolCall] | None:
    if not is_valid_python_list(text):
        return None
    try:
        parsed = parse_python_list_for_function_calls(text)
    except (ValueError, SyntaxError):  # an argument that is not a literal
        return None
    return [_call(name, args) for name, args in parsed]


def parse_tool_calls(region: str) -> list[ToolCall] | None:
    """The tool calls a tool-call region holds (text from the marker on), or None."""
    python_tag = region.startswith(PYTHON_TAG)
    body = region[len(PYTHON_TAG) :].strip() if python_tag else region.strip()
    for parse in (_builtin_call, _function_tag_calls, _json_calls, _python_list_calls):
        calls = parse(body)
        if calls:
            return calls
    if python_tag and body:
        return [_call(BuiltinTool.code_interpreter.value, {"code": body})]
    return None


def tool_region_start(text: str) -> int | None:
    """Where the tool-call region of a whole answer starts, or None if it has none."""
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        return len(text) - len(stripped)
    positions = [i for i in (text.find(marker) for marker in _MARKERS) if i >= 0]
    return min(positions) if positions else None


def parse_assistant_output(
    text: str, stop_reason: StopReason, tool_prompt_format: ToolPromptFormat | None = None
) -> CompletionMessage:
    """The CompletionMessage for a model's whole answer (stop token removed): tool calls parsed
    out of it, and the text before them as content. Unparseable text stays plain content.

    `tool_prompt_format` is accepted for symmetry with the prompt side; every format is tried.
    """
    del tool_prompt_format
    start = tool_region_start(text)
    if start is not None:
        calls = parse_tool_calls(text[start:])
        if calls:
            prefix = text[:start]
            return CompletionMessage(
                content=prefix if prefix.strip() else "", stop_reason=stop_reason, tool_calls=calls
            )
    return CompletionMessage(content=text, stop_reason=stop_reason)


class ToolCallStreamParser:
    """Splits a stream of text deltas into text and tool-call deltas as they are generated,
    agreeing with `parse_assistant_output` on the whole text (content and calls).

    Usage::

        parser = ToolCallStreamParser()
        for delta in text_deltas:
            for item in parser.feed(delta):   # str: text to send now; ToolCallDelta: a tool event
                send(item)
        for item in parser.finish():          # flushes held text, then the call's outcome
            send(item)
        parser.tool_calls                     # the parsed calls, once finished

    `feed` yields text straight away, except a tail that might be the start of a marker
    (``<|pyth``...), held until the next delta decides. Once a tool call starts it streams:
    ToolCallDelta(started, ""), then ToolCallDelta(in_progress, raw text) for each piece of the
    call as it arrives; `finish` then emits one ToolCallDelta(success, ToolCall) per parsed call,
    or ToolCallDelta(failure, raw text) when the call does not parse (its text then stays the
    message content, as in `parse_assistant_output`).

    An explicit marker (``<|python_tag|>``, ``<function=``) starts a call at once. An answer that
    opens with ``{`` or ``[`` is held only until its first characters decide: a JSON object whose
    first key is "type" or "name" (alone or in a list) or a list opening with a call
    (``[get_weather(``) is a tool call; anything else (``{"answer": 42}``, ``[1, 2]``) is text.
    """

    def __init__(self) -> None:
        self._pending = ""  # text not yet emitted: a possible marker prefix, or leading whitespace
        self._region: str | None = None  # the tool-call region once one started
        self._undecided = False  # the region opens with { or [ and may still turn out to be text
        self._at_start = True  # no visible text emitted yet
        self.content = ""  # the text emitted so far (the message content)
        self.tool_calls: list[ToolCall] = []

    def feed(self, delta: str) -> list[str | ToolCallDelta]:
        if self._region is not None:
            self._region += delta
            return self._advance(delta)
        text = self._pending + delta
        self._pending = ""
        if self._at_start:
            stripped = text.lstrip()
            if not stripped:
                self._pending = text
                return []
            if stripped[0] in "{[":
                self._region, self._undecided = text, True
                return self._advance(text)
        return self._plain(text)

    def _plain(self, text: str) -> list[str | ToolCallDelta]:
        """Text outside a tool call: emitted, up to a marker (which opens one) or a possible start of one."""
        start = _first_marker(text)
        if start is not None:
            prefix = text[:start]
            # Whitespace alone before a tool call is not content (as in parse_assistant_output).
            events = [] if self._at_start and not prefix.strip() else self._emit(prefix)
            self._region = text[start:]
            return events + self._open(self._region)
        keep = _marker_prefix_len(text)
        self._pending = text[len(text) - keep :]
        return self._emit(text[: len(text) - keep])

    def finish(self) -> list[str | ToolCallDelta]:
        if self._region is None:
            text, self._pending = self._pending, ""
            return self._emit(text)
        region = self._region
        if self._undecided:  # ended before its first characters decided: parse the whole of it
            calls = parse_tool_calls(region)
            if not calls:
                return self._emit(region)
            events = self._open(region)
        else:
            calls = parse_tool_calls(region)
            events = []
        if calls:
            self.tool_calls = calls
            return events + [ToolCallDelta(content=call, parse_status=ToolCallParseStatus.success) for call in calls]
        self.content += region
        return [*events, ToolCallDelta(content=region, parse_status=ToolCallParseStatus.failure)]

    def _advance(self, delta: str) -> list[str | ToolCallDelta]:
        """Events for a delta added to the region: in_progress once it is a call, or, while a
        leading { / [ is undecided, nothing until its first characters settle it."""
        if not self._undecided:
            return [_in_progress(delta)] if delta else []
        assert self._region is not None
        verdict = opens_a_tool_call(self._region)
        if verdict is None:
            return []
        self._undecided = False
        if verdict:
            return self._open(self._region)
        region, self._region = self._region, None
        return self._plain(region)  # ordinary text after all: a marker later on still opens a call

    def _open(self, region: str) -> list[str | ToolCallDelta]:
        events: list[str | ToolCallDelta] = [ToolCallDelta(content="", parse_status=ToolCallParseStatus.started)]
        return events + ([_in_progress(region)] if region else [])

    def _emit(self, text: str) -> list[str | ToolCallDelta]:
        if not text:
            return []
        if text.strip():
            self._at_start = False
        self.content += text
        return [text]


def _in_progress(text: str) -> ToolCallDelta:
    return ToolCallDelta(content=text, parse_status=ToolCallParseStatus.in_progress)


_CALL_KEYS = ("type", "name")
_IDENTIFIER = re.compile(r"[A-Za-z_][\w.]*")


def opens_a_tool_call(text: str) -> bool | None:
    """Whether an answer opening with { or [ is a tool call (json or python_list), judged from
    its first characters; None while they do not decide yet."""
    rest = text.lstrip()
    if rest.startswith("{"):
        return _object_opens_a_call(rest[1:])
    rest = rest[1:].lstrip()
    if not rest:
        return None
    if rest.startswith("{"):
        return _object_opens_a_call(rest[1:])
    name = _IDENTIFIER.match(rest)
    if name is None:
        return False
    after = rest[name.end() :].lstrip()
    if not after:
        return None
    return after.startswith("(")


def _object_opens_a_call(rest: str) -> bool | None:
    rest = rest.lstrip()
    if not rest:
        return None
    if not rest.startswith('"'):
        return False
    key, closed, _ = rest[1:].partition('"')
    if not closed:
        return None if any(name.startswith(key) for name in _CALL_KEYS) else False
    return key in _CALL_KEYS


def _first_marker(text: str) -> int | None:
    positions = [i for i in (text.find(marker) for marker in _MARKERS) if i >= 0]
    return min(positions) if positions else None


def _marker_prefix_len(text: str) -> int:
    """The length of the longest tail of `text` that is a proper prefix of a marker."""
    best = 0
    for marker in _MARKERS:
        for size in range(min(len(marker) - 1, len(text)), best, -1):
            if text.endswith(marker[:size]):
                best = size
                break
    return best
