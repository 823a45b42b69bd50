"""What the remote inference providers (openai_compat, bedrock) share, free of any SDK import.

Llama model ids come in two spellings the stack accepts: the descriptor (`Llama3.2-3B-Instruct`)
and the Hugging Face repo (`meta-llama/Llama-3.2-3B-Instruct`); remote providers key their
model-id maps by descriptor. Tool definitions become JSON schemas for backends that take them.
"""

from __future__ import annotations

from typing import Any

from llama_stack.apis.common import BuiltinTool, ToolDefinition

# descriptor -> Hugging Face repo; the models a remote vendor may serve under its own names.
LLAMA_MODELS: dict[str, str] = {
    "Llama3.1-8B-Instruct": "meta-llama/Llama-3.1-8B-Instruct",
    "Llama3.1-70B-Instruct": "meta-llama/Llama-3.1-70B-Instruct",
    "Llama3.1-405B-Instruct": "meta-llama/Llama-3.1-405B-Instruct-FP8",
    "Llama3.2-1B-Instruct": "meta-llama/Llama-3.2-1B-Instruct",
    "Llama3.2-3B-Instruct": "meta-llama/Llama-3.2-3B-Instruct",
    "Llama3.2-11B-Vision-Instruct": "meta-llama/Llama-3.2-11B-Vision-Instruct",
    "Llama3.2-90B-Vision-Instruct": "meta-llama/Llama-3.2-90B-Vision-Instruct",
    "Llama3.3-70B-Instruct": "meta-llama/Llama-3.3-70B-Instruct",
    "Llama-Guard-3-1B": "meta-llama/Llama-Guard-3-1B",
    "Llama-Guard-3-8B": "meta-llama/Llama-Guard-3-8B",
    "Llama-Guard-3-11B-Vision": "meta-llama/Llama-Guard-3-11B-Vision",
}

_BY_LOWER: dict[str, str] = {
    **{descriptor.lower(): descriptor for descriptor in LLAMA_MODELS},
    **{repo.lower(): descriptor for descriptor, repo in LLAMA_MODELS.items()},
    # The 405B repo is also known without its -FP8 suffix.
    "meta-llama/llama-3.1-405b-instruct": "Llama3.1-405B-Instruct",
}


def llama_descriptor(model_id: str) -> str | None:
    """The descriptor of a Llama model given in either spelling (case-insensitive), else None."""
    return _BY_LOWER.get(model_id.lower())


def vendor_model_name(model_id: str, vendor_ids: dict[str, str], overrides: dict[str, str]) -> str:
    """What a vendor calls `model_id`: a configured override (keyed by any spelling) first, then
    the vendor's table, else the id unchanged (a vendor model name given as is)."""
    descriptor = llama_descriptor(model_id)
    spellings = [model_id] if descriptor is None else [model_id, descriptor, LLAMA_MODELS[descriptor]]
    for spelling in spellings:
        if spelling in overrides:
            return overrides[spelling]
    if descriptor is not None and descriptor in vendor_ids:
        return vendor_ids[descriptor]
    return model_id


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
