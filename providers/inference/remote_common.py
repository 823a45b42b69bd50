"""What the remote inference providers (openai_compat, bedrock) share, free of any SDK import.

Llama model ids come in two spellings the stack accepts: the descriptor (`Llama3.2-3B-Instruct`)
and the Hugging Face repo (`meta-llama/Llama-3.2-3B-Instruct`); remote providers key their
model-id maps by descriptor. Tool definitions become JSON schemas for backends that take them
(the OpenAI wire module's tool_parameters_schema).
"""

from __future__ import annotations

from llama_stack.models.openai.requests import tool_parameters_schema

__all__ = ["LLAMA_MODELS", "llama_descriptor", "tool_parameters_schema", "vendor_model_name"]

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
