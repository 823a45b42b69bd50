"""Tool definitions rendered into Llama 3.1 / 3.2 prompts, and which tool format each model takes.

The prompts follow the formats Meta documents in the `llama-models` package
(`llama_models/llama3_1/prompt_format.md`, `llama_models/llama3_2/text_prompt_format.md` and
`vision_prompt_format.md`); llama-models 0.3.0 no longer ships the system-prompt generators
themselves, so the text is written here, word for word from those documents:

- builtin tools (brave_search, wolfram_alpha, photogen; code_interpreter is implied) go in the
  system prompt as ``Environment: ipython`` / ``Tools: brave_search, wolfram_alpha``, followed by
  the knowledge-cutoff and today's date lines;
- custom tools in the ``json`` or ``function_tag`` format (Llama 3.1) come as a user message
  after the system prompt, describing each function and the call format;
- custom tools in the ``python_list`` format (Llama 3.2 1B/3B) are described in the system
  prompt, and the model answers ``[get_weather(city="Paris")]``.

Which format a model takes:

============================  ======================  ==============================
model family                  default                 accepted
============================  ======================  ==============================
Llama 3.1, 3.2 Vision         json                    json, function_tag
Llama 3.2 1B/3B, Llama 3.3    python_list             python_list, json, function_tag
tiny test models, unknown     json                    json, function_tag, python_list
============================  ======================  ==============================

The python_list format is documented for the Llama 3.2 text models only (and Llama 3.3 follows
3.2 in Meta's reference stack), so it is refused for Llama 3.1 and 3.2 Vision. Llama 3.2's own
Hugging Face chat template prompts tools as JSON, so json stays accepted on 3.2 text models.
"""

from __future__ import annotations

import json
import re
from datetime import date
from enum import StrEnum

from llama_stack.apis.common import BuiltinTool, ToolChoice, ToolDefinition, ToolPromptFormat
from llama_stack.apis.errors import InvalidRequest

BUILTIN_TOOL_NAMES = frozenset(tool.value for tool in BuiltinTool)


class ModelFamily(StrEnum):
    llama3_1 = "Llama 3.1"
    llama3_2_text = "Llama 3.2 text"
    llama3_2_vision = "Llama 3.2 Vision"
    llama3_3 = "Llama 3.3"
    other = "other"  # the tiny test models, or a checkpoint path that names no family


SUPPORTED_FORMATS: dict[ModelFamily, tuple[ToolPromptFormat, ...]] = {
    ModelFamily.llama3_1: (ToolPromptFormat.json, ToolPromptFormat.function_tag),
    ModelFamily.llama3_2_vision: (ToolPromptFormat.json, ToolPromptFormat.function_tag),
    ModelFamily.llama3_2_text: (ToolPromptFormat.python_list, ToolPromptFormat.json, ToolPromptFormat.function_tag),
    ModelFamily.llama3_3: (ToolPromptFormat.python_list, ToolPromptFormat.json, ToolPromptFormat.function_tag),
    ModelFamily.other: (ToolPromptFormat.json, ToolPromptFormat.function_tag, ToolPromptFormat.python_list),
}

_VERSION = re.compile(r"llama[-_ ]?3[._-]?([123])(?!\d)")


def model_family(model_id: str) -> ModelFamily:
    """The Llama family of a model id: a llama-models descriptor (Llama3.2-1B-Instruct), a Hugging
    Face repo (meta-llama/Llama-3.1-8B-Instruct) or a checkpoint path that contains either."""
    name = model_id.lower()
    match = _VERSION.search(name)
    if match is None:
        return ModelFamily.other
    minor = match.group(1)
    if minor == "1":
        return ModelFamily.llama3_1
    if minor == "3":
        return ModelFamily.llama3_3
    return ModelFamily.llama3_2_vision if "vision" in name else ModelFamily.llama3_2_text


def default_tool_prompt_format(model_id: str) -> ToolPromptFormat:
    """The custom-tool format a model was trained on, used when the request names none."""
    return SUPPORTED_FORMATS[model_family(model_id)][0]


def check_tool_prompt_format(model_id: str, fmt: ToolPromptFormat | None) -> ToolPromptFormat:
    """The format to use for `model_id`: `fmt` if that model supports it, its default if `fmt` is
    None. Raises InvalidRequest naming the supported formats otherwise."""
    family = model_family(model_id)
    supported = SUPPORTED_FORMATS[family]
    if fmt is None:
        return supported[0]
    if fmt not in supported:
        names = ", ".join(f.value for f in supported)
        raise InvalidRequest(
            f"tool_prompt_format '{fmt.value}' is not supported by model {model_id} ({family.value} family); "
            f"use one of: {names} (or leave tool_prompt_format unset for the model's default, {supported[0].value})"
        )
    return fmt


def is_builtin(tool: ToolDefinition) -> bool:
    return tool.tool_name in BUILTIN_TOOL_NAMES


# --- system prompt ------------------------------------------------------------------------------


def builtin_tools_block(tools: list[ToolDefinition]) -> str:
    """``Environment: ipython`` (turns on code_interpreter and the <|python_tag|> / <|eom_id|>
    protocol) and the ``Tools:`` line naming the other builtin tools; empty without tools."""
    if not tools:
        return ""
    names = [t.tool_name for t in tools if is_builtin(t) and t.tool_name != BuiltinTool.code_interpreter]
    lines = ["Environment: ipython"]
    if names:
        lines.append("Tools: " + ", ".join(names))
    return "\n".join(lines) + "\n"


def date_block(today: date | None = None) -> str:
    day = today or date.today()
    return f"Cutting Knowledge Date: December 2023\nToday Date: {day.day:02d} {day:%B %Y}\n"


def _required(tool: ToolDefinition) -> list[str]:
    return [name for name, param in (tool.parameters or {}).items() if param.required]


def _json_tool(tool: ToolDefinition) -> str:
    params = tool.parameters or {}
    described = {
        "type": "function",
        "function": {
            "name": tool.tool_name,
            "description": tool.description or "",
            "parameters": {
                "type": "object",
                "properties": {
                    name: {"type": param.param_type, "description": param.description or ""}
                    for name, param in params.items()
                },
                "required": _required(tool),
            },
        },
    }
    return json.dumps(described, indent=4)


def json_tools_prompt(tools: list[ToolDefinition]) -> str:
    functions = "\n".join(_json_tool(t) for t in tools)
    return (
        "Answer the user's question by making use of the following functions if needed.\n"
        "If none of the function can be used, please say so.\n"
        "Here is a list of functions in JSON format:\n"
        f"{functions}\n\n"
        "Return function calls in JSON format."
    )


def function_tag_tools_prompt(tools: list[ToolDefinition]) -> str:
    described = []
    for tool in tools:
        params = {
            name: param.model_dump(exclude={"default"}, exclude_none=True)
            for name, param in (tool.parameters or {}).items()
        }
        spec = {"name": tool.tool_name, "description": tool.description or "", "parameters": params}
        described.append(f"Use the function '{tool.tool_name}' to '{tool.description or ''}':\n{json.dumps(spec)}\n")
    return (
        "You have access to the following functions:\n\n"
        + "\n".join(described)
        + "\nThink very carefully before calling functions.\n"
        "If you choose to call a function ONLY reply in the following format with no prefix or suffix:\n\n"
        '<function=example_function_name>{"example_name": "example_value"}</function>\n\n'
        "Reminder:\n"
        "- If looking for real time information use relevant functions before falling back to brave_search\n"
        "- Function calls MUST follow the specified format, start with <function= and end with </function>\n"
        "- Required parameters MUST be specified\n"
        "- Only call one function at a time\n"
        "- Put the entire function call reply on one line"
    )


def _python_list_tool(tool: ToolDefinition) -> dict[str, object]:
    properties: dict[str, dict[str, object]] = {}
    for name, param in (tool.parameters or {}).items():
        prop: dict[str, object] = {"type": param.param_type, "description": param.description or ""}
        if param.default is not None:
            prop["default"] = param.default
        properties[name] = prop
    return {
        "name": tool.tool_name,
        "description": tool.description or "",
        "parameters": {"type": "dict", "required": _required(tool), "properties": properties},
    }


def python_list_tools_prompt(tools: list[ToolDefinition]) -> str:
    return (
        "You are an expert in composing functions. You are given a question and a set of possible functions.\n"
        "Based on the question, you will need to make one or more function/tool calls to achieve the purpose.\n"
        "If none of the function can be used, point it out. If the given question lacks the parameters required "
        "by the function,\nalso point it out. You should only return the function call in tools call sections.\n\n"
        "If you decide to invoke any of the function(s), you MUST put it in the format of "
        "[func_name1(params_name1=params_value1, params_name2=params_value2...), func_name2(params)]\n"
        "You SHOULD NOT include any other text in the response.\n\n"
        "Here is a list of functions in JSON format that you can invoke.\n\n"
        + json.dumps([_python_list_tool(t) for t in tools], indent=4)
    )


REQUIRED_INSTRUCTION = (
    "You MUST call one of the tools above to answer: reply with a tool call only, not with plain text."
)


def custom_tools_prompt(tools: list[ToolDefinition], fmt: ToolPromptFormat) -> str:
    if fmt == ToolPromptFormat.json:
        return json_tools_prompt(tools)
    if fmt == ToolPromptFormat.function_tag:
        return function_tag_tools_prompt(tools)
    return python_list_tools_prompt(tools)


def tool_prompts(
    tools: list[ToolDefinition],
    fmt: ToolPromptFormat,
    *,
    tool_choice: ToolChoice = ToolChoice.auto,
    system_text: str | None = None,
    today: date | None = None,
) -> tuple[str, str | None]:
    """(system prompt, tools user message or None) for a chat offering `tools`.

    `system_text` is the caller's own system message, kept after the tool preamble. With
    tool_choice=required the model is told it must call a tool: a generation cannot be retried
    server-side, so the instruction is the one lever a prompt gives.
    """
    custom = [t for t in tools if not is_builtin(t)]
    system = builtin_tools_block(tools)
    instructions: str | None = None
    if fmt == ToolPromptFormat.python_list:
        if len(custom) < len(tools):  # builtin tools: Llama 3.2's documented preamble has the dates
            system += date_block(today)
        if custom:
            system += ("\n" if system else "") + python_list_tools_prompt(custom) + "\n"
    else:
        system += date_block(today)
        if custom:
            instructions = custom_tools_prompt(custom, fmt)
    if tool_choice == ToolChoice.required:
        if instructions is not None:
            instructions += "\n\n" + REQUIRED_INSTRUCTION
        else:
            system += REQUIRED_INSTRUCTION + "\n"
    if system_text:
        system += "\n" + system_text
    return system, instructions
