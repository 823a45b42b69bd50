"""A tiny Llama 3 trained (overfit, in seconds on a CPU) to call a tool, cached on disk; a test
fixture, kept out of the wheel.

Random weights never produce a tool call, so the tool-calling path of a provider could only be
tested on strings. This model is a real checkpoint that behaves like a tool-calling assistant
in one narrow way, learnt from varied chat-format prompts:

whatever the conversation, tools or system prompt, it answers
``<|python_tag|>[get_weather(city="Paris")]<|eom_id|>`` (the Llama 3.2 python_list format behind
the python tag: nine tokens, so it fits the small max_tokens tests use). It proves
the mechanics of prompting, parsing, streaming and stop reasons end to end, never tool-use
skill: it calls the tool again even after the tool's result (an agent loop stops at its
max_infer_iters). Same cache scheme as the tiny model; training takes a few seconds.
"""

from __future__ import annotations

import random
from datetime import date
from pathlib import Path
from typing import Any

from llama_stack.apis.common import (
    CompletionMessage,
    Message,
    StopReason,
    SystemMessage,
    ToolCall,
    ToolDefinition,
    ToolParamDefinition,
    ToolPromptFormat,
    ToolResponseMessage,
    UserMessage,
)
from llama_stack.models.tiny import TINY_LLAMA_CONFIG, ensure_built

TINY_TOOL_MODEL_NAME = "tiny-tool-caller-llama-3"
RECIPE_VERSION = 2
SEED = 20241001
STEPS = 100
TOOL_CALL_TEXT = '[get_weather(city="Paris")]'

_QUESTIONS = [
    "What is the weather in Paris?",
    "Is it raining in Paris today?",
    "weather paris",
    "Tell me the forecast for Paris, please.",
    "How warm is it in Paris right now?",
    "Hello",
]
_SYSTEMS = [None, "You are a helpful assistant.", "Answer briefly."]
_DESCRIPTIONS = ["Get the current weather", "Weather of a city", "Returns the weather for a place"]


def _recipe() -> dict[str, Any]:
    return {
        "recipe_version": RECIPE_VERSION,
        "seed": SEED,
        "steps": STEPS,
        "config": TINY_LLAMA_CONFIG,
        "call": TOOL_CALL_TEXT,
    }


def ensure_tiny_tool_model(root: str | Path, name: str = TINY_TOOL_MODEL_NAME) -> Path:
    """The directory of the tool-calling tiny model under `root`, trained first if not cached.
    Register it with this path as the provider_resource_id."""
    return ensure_built(root, name, _recipe(), build_tiny_tool_model)


def _weather_tool(rng: random.Random) -> ToolDefinition:
    return ToolDefinition(
        tool_name="get_weather",
        description=rng.choice(_DESCRIPTIONS),
        parameters={"city": ToolParamDefinition(param_type="string", description="The city")},
    )


def _example(rng: random.Random) -> tuple[list[int], list[int]]:
    """(prompt tokens, target tokens) of one training conversation."""
    from llama_stack.models.chat_format import encode_dialog, get_tokenizer

    tokenizer = get_tokenizer()
    messages: list[Message] = []
    system = rng.choice(_SYSTEMS)
    if system:
        messages.append(SystemMessage(content=system))
    messages.append(UserMessage(content=rng.choice(_QUESTIONS)))
    if rng.random() < 0.3:
        call = ToolCall(call_id="c", tool_name="get_weather", arguments={"city": "Paris"})
        messages.append(CompletionMessage(content="", stop_reason=StopReason.end_of_message, tool_calls=[call]))
        messages.append(
            ToolResponseMessage(call_id="c", tool_name="get_weather", content=rng.choice(["sunny", "22 C"]))
        )
    tools = [_weather_tool(rng)] if rng.random() < 0.8 else []
    fmt = rng.choice([ToolPromptFormat.json, ToolPromptFormat.function_tag, ToolPromptFormat.python_list])
    today = date.fromordinal(date(2024, 1, 1).toordinal() + rng.randrange(3000))
    prompt = encode_dialog(messages, model_id="tiny", tools=tools, tool_prompt_format=fmt, today=today)
    call_tokens = tokenizer.encode(TOOL_CALL_TEXT, bos=False, eos=False)
    return prompt, [tokenizer.special_tokens["<|python_tag|>"], *call_tokens, tokenizer.eom_id]


def build_tiny_tool_model(dest: str | Path) -> None:
    """Train the tiny Llama on varied prompts to give the fixed answers, and save it in `dest`."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(SEED)
    rng = random.Random(SEED)
    config = LlamaConfig(**TINY_LLAMA_CONFIG)
    model: Any = LlamaForCausalLM(config)
    examples = [_example(rng) for _ in range(64)]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    model.train()
    for step in range(STEPS):
        batch = [examples[(step * 4 + i) % len(examples)] for i in range(4)]
        loss = sum((_loss(model, prompt, target) for prompt, target in batch), torch.zeros(()))
        optimizer.zero_grad()
        (loss / len(batch)).backward()
        optimizer.step()
    model.eval()
    Path(dest).mkdir(parents=True, exist_ok=True)
    model.save_pretrained(dest, safe_serialization=True)


def _loss(model: Any, prompt: list[int], target: list[int]) -> Any:
    """Cross-entropy of the target tokens only (the prompt is context, not a lesson)."""
    import torch

    ids = torch.tensor([prompt + target])
    hidden = model.model(input_ids=ids).last_hidden_state[0, len(prompt) - 1 : -1]
    logits = model.lm_head(hidden)
    return torch.nn.functional.cross_entropy(logits, torch.tensor(target))
