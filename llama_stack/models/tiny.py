"""A tiny random-weight Llama 3 checkpoint, built on first use and cached on disk.

It has the real Llama 3 vocabulary (128256 ids) so the real tokenizer and chat format from
`llama-models` drive it, but only a few small layers, so it loads in a blink on any CPU. Its
weights come from a fixed seed and an explicit init (not transformers' own init code), so every
machine builds the same model and greedy outputs are reproducible. It proves mechanics
(prompting, streaming, stop tokens, batching), never quality.

torch and transformers are imported inside the functions: importing this module stays cheap.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

TINY_MODEL_ID = "tiny-random-llama-3"

# Bump when the recipe below changes, so stale caches get rebuilt rather than silently reused.
RECIPE_VERSION = 1
MARKER_FILE = "tiny-model.json"

TINY_LLAMA_CONFIG: dict[str, Any] = {
    "vocab_size": 128256,
    "hidden_size": 64,
    "intermediate_size": 256,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 8192,
    "rope_theta": 500000.0,
    "rms_norm_eps": 1e-5,
    "tie_word_embeddings": True,
    "bos_token_id": 128000,
    "eos_token_id": [128001, 128008, 128009],
    "pad_token_id": 128004,
}
SEED = 20240923
# Larger than transformers' 0.02 so the random layers move the residual stream enough to give
# varied (rather than endlessly repeated) tokens, which makes batching bugs visible in tests.
INIT_STD = 0.2
# The constant written into embedding dimension 0 by `favour_token_id` (see build_tiny_model);
# big enough to dominate the residual stream whatever the random layers add to it.
FAVOUR_BOOST = 100.0


def _recipe(favour_token_id: int | None) -> dict[str, Any]:
    return {
        "recipe_version": RECIPE_VERSION,
        "seed": SEED,
        "init_std": INIT_STD,
        "favour_token_id": favour_token_id,
        "config": TINY_LLAMA_CONFIG,
    }


def is_built(model_dir: Path, favour_token_id: int | None = None, *, recipe: dict[str, Any] | None = None) -> bool:
    marker = model_dir / MARKER_FILE
    if not marker.is_file() or not (model_dir / "config.json").is_file():
        return False
    expected = recipe if recipe is not None else _recipe(favour_token_id)
    try:
        return bool(json.loads(marker.read_text()) == expected)
    except (OSError, ValueError):
        return False


def ensure_tiny_model(root: str | Path, name: str = TINY_MODEL_ID, *, favour_token_id: int | None = None) -> Path:
    """The directory of the tiny model under `root`, building it first if it is not cached."""
    return ensure_built(
        root, name, _recipe(favour_token_id), lambda dest: build_tiny_model(dest, favour_token_id=favour_token_id)
    )


def ensure_built(root: str | Path, name: str, recipe: dict[str, Any], build: Callable[[Path], None]) -> Path:
    """`root/name`, built by `build(dir)` unless a build of the same `recipe` is cached there.

    Built in a temporary sibling directory and renamed into place, so a reader never sees a
    half-written model and two processes building at once both end with the same complete one.
    The recipe is written as the marker file last, so a stale or partial build is never reused.
    """
    root = Path(root).expanduser()
    model_dir = root / name
    if is_built(model_dir, recipe=recipe):
        return model_dir
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-building-", dir=root))
    try:
        build(staging)
        (staging / MARKER_FILE).write_text(json.dumps(recipe, indent=2))
        _move_into_place(staging, model_dir, recipe)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return model_dir


def _move_into_place(staging: Path, model_dir: Path, recipe: dict[str, Any]) -> None:
    try:
        os.rename(staging, model_dir)
        return
    except OSError:
        if is_built(model_dir, recipe=recipe):
            return  # another process finished first; its model is identical to ours
    # A stale build (older recipe) is in the way: move it aside, then take its place.
    stale = model_dir.with_name(f".{model_dir.name}-stale-{uuid.uuid4().hex[:8]}")
    try:
        os.rename(model_dir, stale)
    except OSError:
        pass  # someone else moved it already
    try:
        os.rename(staging, model_dir)
    except OSError:
        if not is_built(model_dir, recipe=recipe):
            raise
    shutil.rmtree(stale, ignore_errors=True)


def build_tiny_model(dest: str | Path, *, favour_token_id: int | None = None) -> None:
    """Write a tiny LlamaForCausalLM (safetensors + config.json) into `dest`.

    `favour_token_id` makes that token win every greedy step: tests use it to force a stop token
    (e.g. <|eot_id|>) out of a real model. Embedding dimension 0 is set to a large constant for
    every token, so after the final norm that dimension dominates and is positive whatever the
    input; the favoured token's (tied) embedding has twice the constant there, so its logit
    leads every other by hundreds.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    config = LlamaConfig(**TINY_LLAMA_CONFIG)
    with torch.device("cpu"):
        model: Any = LlamaForCausalLM(config)
    generator = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        for param_name, param in sorted(model.named_parameters(), key=lambda item: item[0]):
            if param_name.endswith("norm.weight"):
                param.fill_(1.0)
            else:
                param.copy_(torch.randn(param.shape, generator=generator) * INIT_STD)
        if favour_token_id is not None:
            embeddings = model.get_input_embeddings().weight
            embeddings[:, 0] = FAVOUR_BOOST
            embeddings[favour_token_id, 0] = 2 * FAVOUR_BOOST
    model.eval()
    model.save_pretrained(dest, safe_serialization=True)
