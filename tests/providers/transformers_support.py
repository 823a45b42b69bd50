"""Helpers shared by the inline::transformers test modules (they do not import conftest)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from llama_stack.apis.common import SamplingParams, UserMessage
from llama_stack.apis.inference import ChatCompletionRequest
from llama_stack.apis.models import Model
from llama_stack.models.tiny import TINY_MODEL_ID

TINY = TINY_MODEL_ID
TINY_CONTEXT = 256  # the session provider's max_seq_len (conftest.py)
EOT, EOM = 128009, 128008


def chat(text: str, max_tokens: int = 12, **sampling: Any) -> ChatCompletionRequest:
    return ChatCompletionRequest(
        model_id=TINY,
        messages=[UserMessage(content=text)],
        sampling_params=SamplingParams(max_tokens=max_tokens, **sampling),
    )


def model(resource_id: str) -> Model:
    return Model(identifier=resource_id, provider_resource_id=resource_id, provider_id="transformers")


def load_hf_tiny(tiny_model_dir: Path) -> Any:
    """The same tiny checkpoint loaded by plain transformers, to compare against."""
    from transformers import AutoModelForCausalLM

    hf_model: Any = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    return hf_model.eval()


def hf_greedy(hf_model: Any, prompt: list[int], new_tokens: int) -> list[int]:
    with torch.no_grad():
        out = hf_model.generate(
            torch.tensor([prompt]), max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False
        )
    return [int(t) for t in out[0, len(prompt) :]]


def test_models_root() -> Path:
    """Where tests cache the tiny models that take a while to build (the trained tool caller):
    $LLAMA_STACK_TEST_MODELS, else ~/.cache/llama-stack-tests/tiny-models. Builds are keyed by
    their recipe, so a stale cache is rebuilt, never reused."""
    import os

    configured = os.environ.get("LLAMA_STACK_TEST_MODELS")
    return Path(configured or "~/.cache/llama-stack-tests/tiny-models").expanduser()


def gguf_test_cache_dir() -> Path:
    """Where tests keep GGUF checkpoints dequantized (SmolLM2: about a minute to convert on a busy
    CPU, a second to load afterwards): $LLAMA_STACK_TEST_GGUF_CACHE, else
    ~/.cache/llama-stack-tests/gguf-cache. Entries are keyed by the GGUF file's content and
    written atomically, so sessions share them safely."""
    import os

    configured = os.environ.get("LLAMA_STACK_TEST_GGUF_CACHE")
    return Path(configured or "~/.cache/llama-stack-tests/gguf-cache").expanduser()
