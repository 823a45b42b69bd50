"""The tools an agent offers its model, and how a tool call is answered.

Builtin tools (code_interpreter, brave_search, wolfram_alpha) run here; function_call tools are
the app's own ("client tools"): a turn whose model calls one ends with that call, and the app
sends the result back as a new turn with an `ipython` message. The memory tool is not offered to
the model: it is retrieval that runs before inference (see memory.py). A code_interpreter with
`enable_inline_code_execution: false` is offered to the model but answered by the app, like a
function_call tool. Each tool's own input and output shields are kept by name for the turn.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import httpx

from llama_stack.apis.agents import (
    AgentConfig,
    Attachment,
    CodeInterpreterToolDefinition,
    FunctionCallToolDefinition,
    MemoryToolDefinition,
    PhotogenToolDefinition,
    SearchToolDefinition,
    WolframAlphaToolDefinition,
)
from llama_stack.apis.common import BuiltinTool, InterleavedContent, ToolCall, ToolDefinition

from .config import WebToolsConfig
from .sandbox import Sandbox

BUILTIN_NAMES = frozenset(tool.value for tool in BuiltinTool)


@dataclass
class ToolOutcome:
    content: InterleavedContent
    attachments: list[Attachment] = field(default_factory=list)


class Tool(Protocol):
    name: str

    async def run(self, call: ToolCall) -> ToolOutcome: ...


@dataclass
class ToolServices:
    """What the builtin tools share across agents: one sandbox, one HTTP client."""

    sandbox: Sandbox
    http: httpx.AsyncClient
    web: WebToolsConfig


class _Unavailable:
    def __init__(self, name: str, why: str) -> None:
        self.name = name
        self.why = why

    async def run(self, call: ToolCall) -> ToolOutcome:
        return ToolOutcome(f"The tool {self.name} is {self.why}.")


@dataclass(frozen=True)
class ToolShields:
    input: list[str]
    output: list[str]


@dataclass
class Toolbox:
    definitions: list[ToolDefinition]
    builtin: dict[str, Tool]
    memory: MemoryToolDefinition | None = None
    # Builtin tools the app runs itself (code_interpreter without inline execution).
    client_builtins: set[str] = field(default_factory=set)
    shields: dict[str, ToolShields] = field(default_factory=dict)

    def is_client_call(self, call: ToolCall) -> bool:
        """A call the app answers: a name that is not a builtin tool, or a builtin the app runs."""
        name = call.tool_name
        return name in self.client_builtins or (name not in self.builtin and name not in BUILTIN_NAMES)

    def shields_of(self, tool_name: str) -> ToolShields:
        return self.shields.get(tool_name, ToolShields(input=[], output=[]))

    async def run(self, call: ToolCall) -> ToolOutcome:
        tool = self.builtin.get(call.tool_name) or _Unavailable(call.tool_name, "not enabled for this agent")
        return await tool.run(call)


def build_toolbox(config: AgentConfig, services: ToolServices) -> Toolbox:
    from .code_interpreter import CodeInterpreterTool
    from .web import WebSearchTool, WolframAlphaTool

    box = Toolbox(definitions=[], builtin={})
    for tool in config.tools:
        if isinstance(tool, MemoryToolDefinition):
            box.memory = tool
            continue
        if isinstance(tool, FunctionCallToolDefinition):
            box.definitions.append(
                ToolDefinition(
                    tool_name=tool.function_name,
                    description=tool.description,
                    parameters={name: param for name, param in tool.parameters.items()},
                )
            )
            box.shields[tool.function_name] = ToolShields(tool.input_shields, tool.output_shields)
            continue
        runner: Tool
        if isinstance(tool, CodeInterpreterToolDefinition) and not tool.enable_inline_code_execution:
            box.definitions.append(ToolDefinition(tool_name=BuiltinTool.code_interpreter.value))
            box.client_builtins.add(BuiltinTool.code_interpreter.value)
            box.shields[BuiltinTool.code_interpreter.value] = ToolShields(tool.input_shields, tool.output_shields)
            continue
        if isinstance(tool, CodeInterpreterToolDefinition):
            runner = CodeInterpreterTool(services.sandbox)
        elif isinstance(tool, SearchToolDefinition):
            runner = WebSearchTool(tool, services.web, services.http)
        elif isinstance(tool, WolframAlphaToolDefinition):
            runner = WolframAlphaTool(tool, services.web, services.http)
        else:
            assert isinstance(tool, PhotogenToolDefinition)
            runner = _Unavailable("photogen", "not available in this stack")
        box.definitions.append(ToolDefinition(tool_name=runner.name))
        box.builtin[runner.name] = runner
        box.shields[runner.name] = ToolShields(tool.input_shields, tool.output_shields)
    return box
