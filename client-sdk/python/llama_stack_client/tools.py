"""Client tools from plain Python functions.

The function's name is the tool's name; the first line of its docstring the description; its
signature (type hints and defaults) the parameters, each described by its entry in the
docstring's `Args:` section (Google style):

    def get_weather(city: str, unit: str = "celsius") -> str:
        '''Get the current weather in a city.

        Args:
            city: The city to look up.
            unit: "celsius" or "fahrenheit".
        '''
"""

from __future__ import annotations

import enum
import inspect
import json
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Union

from pydantic import BaseModel, validate_call

from llama_stack.apis.agents import FunctionCallToolDefinition
from llama_stack.apis.common import ToolCall, ToolParamDefinition, ToolResponseMessage

SECTION_NAMES = ("args", "arguments", "parameters", "params")
SIMPLE_TYPES: dict[Any, str] = {str: "str", int: "int", float: "float", bool: "bool", list: "list", dict: "dict"}
ENTRY = re.compile(r"^(\*{0,2}\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")


def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """(description, {parameter: description}) from a Google-style docstring."""
    lines = inspect.cleandoc(doc or "").splitlines()
    description = next((line.strip() for line in lines if line.strip()), "")
    params: dict[str, str] = {}
    in_args = False
    entry_indent: int | None = None
    current: str | None = None
    for line in lines:
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if not in_args:
            in_args = stripped.rstrip(":").lower() in SECTION_NAMES and stripped.endswith(":")
            continue
        if not stripped:
            continue
        if indent == 0:
            break  # the next section (Returns:, Raises:...)
        match = ENTRY.match(stripped)
        if match and (entry_indent is None or indent <= entry_indent):
            entry_indent = indent
            current = match.group(1).lstrip("*")
            params[current] = match.group(2).strip()
        elif current is not None:
            params[current] = f"{params[current]} {stripped}".strip()
    return description, params


def param_type(annotation: Any) -> tuple[str, bool]:
    """(the wire name of a type hint, whether it admits None)."""
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        optional = len(members) < len(typing.get_args(annotation))
        name = param_type(members[0])[0] if len(members) == 1 else "str"
        return name, optional
    if origin is Literal:
        values = typing.get_args(annotation)
        return SIMPLE_TYPES.get(type(values[0]), "str"), False
    if origin is not None:
        return SIMPLE_TYPES.get(origin, getattr(origin, "__name__", "str")), False
    if inspect.isclass(annotation) and issubclass(annotation, enum.Enum):
        return "str", False
    if annotation is inspect.Parameter.empty or annotation is Any:
        return "str", False
    return SIMPLE_TYPES.get(annotation, getattr(annotation, "__name__", str(annotation))), False


def _json_default(value: Any) -> Any:
    try:
        json.dumps(value)
    except TypeError:
        return str(value)
    return value


@dataclass(frozen=True)
class ClientTool:
    """A Python function offered to an agent as a `function_call` tool."""

    function: Callable[..., Any]
    definition: FunctionCallToolDefinition

    @property
    def name(self) -> str:
        return self.definition.function_name

    def run(self, call: ToolCall) -> ToolResponseMessage:
        """Call the function with the model's arguments (coerced to the type hints). Whatever it
        raises becomes the tool result text, so the model can see what went wrong."""
        try:
            result = validate_call(self.function)(**call.arguments)
            content = result_text(result)
        except Exception as error:
            content = f"error: {type(error).__name__}: {error}"
        return ToolResponseMessage(call_id=call.call_id, tool_name=call.tool_name, content=content)


def result_text(result: Any) -> str:
    if isinstance(result, str):
        return result
    if isinstance(result, BaseModel):
        return result.model_dump_json()
    return json.dumps(result, default=str)


def client_tool(function: Callable[..., Any]) -> ClientTool:
    """The tool definition of `function`, from its signature and docstring."""
    name = getattr(function, "__name__", "")
    description, documented = parse_docstring(inspect.getdoc(function))
    if not description:
        raise ValueError(f"client tool {name!r} needs a docstring: its first line is the tool's description")
    hints = typing.get_type_hints(function)
    parameters: dict[str, ToolParamDefinition] = {}
    for parameter in inspect.signature(function).parameters.values():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        kind, optional = param_type(hints.get(parameter.name, parameter.annotation))
        has_default = parameter.default is not parameter.empty
        parameters[parameter.name] = ToolParamDefinition(
            param_type=kind,
            description=documented.get(parameter.name),
            required=not has_default and not optional,
            default=_json_default(parameter.default) if has_default else None,
        )
    definition = FunctionCallToolDefinition(function_name=name, description=description, parameters=parameters)
    return ClientTool(function=function, definition=definition)
