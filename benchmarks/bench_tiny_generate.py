"""Tokens per second on the tiny random Llama: raw transformers `generate` against the
inline::transformers provider (one stream, then N concurrent streams), same prompt, one run.

    python -m benchmarks.bench_tiny_generate [--tokens 128] [--concurrency 4] [--device cpu]

The tiny model is so small that these numbers measure per-step overhead (Python, kernel launches,
the lm_head over 128256 ids), which is what batching amortises; they say nothing about a real
model's speed.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM

from llama_stack.apis.common import SamplingParams, UserMessage
from llama_stack.apis.inference import ChatCompletionRequest
from llama_stack.apis.models import Model
from llama_stack.distribution.provider import Deps
from llama_stack.models.chat_format import encode_dialog
from llama_stack.models.tiny import TINY_MODEL_ID, ensure_tiny_model
from llama_stack.providers.inference.transformers import TransformersInferenceConfig, get_provider_impl

PROMPT = "Write a long story about a llama who learns to program."


def raw_generate(model: Any, prompt: list[int], tokens: int, batch: int, device: str) -> float:
    """Tokens per second of greedy `generate` on `batch` copies of the prompt."""
    input_ids = torch.tensor([prompt] * batch, device=device)
    kwargs = {"max_new_tokens": tokens, "min_new_tokens": tokens, "do_sample": False, "pad_token_id": 128004}
    with torch.inference_mode():
        model.generate(input_ids, **{**kwargs, "max_new_tokens": 4, "min_new_tokens": 4})  # warm-up
        started = time.perf_counter()
        model.generate(input_ids, **kwargs)
    return batch * tokens / (time.perf_counter() - started)


async def provider_streams(provider: Any, tokens: int, streams: int) -> float:
    """Tokens per second, all streams together, of `streams` concurrent chat requests."""
    request = ChatCompletionRequest(
        model_id=TINY_MODEL_ID,
        messages=[UserMessage(content=PROMPT)],
        sampling_params=SamplingParams(max_tokens=tokens),
    )
    await provider.chat_completion(request.model_copy(update={"sampling_params": SamplingParams(max_tokens=4)}))
    started = time.perf_counter()
    await asyncio.gather(*(provider.chat_completion(request) for _ in range(streams)))
    return streams * tokens / (time.perf_counter() - started)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=128, help="new tokens per request")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "mps"])
    parser.add_argument("--tiny-model-dir", default=None, help="default: a temporary folder")
    args = parser.parse_args()

    if args.tiny_model_dir:
        await bench(args, Path(args.tiny_model_dir))
        return
    with tempfile.TemporaryDirectory(prefix="tiny-models-") as scratch:
        await bench(args, Path(scratch))


async def bench(args: argparse.Namespace, root: Path) -> None:
    started = time.perf_counter()
    model_dir = ensure_tiny_model(root)
    print(f"tiny model ready in {time.perf_counter() - started:.2f}s at {model_dir}")

    prompt = encode_dialog([UserMessage(content=PROMPT)], model_id=TINY_MODEL_ID)
    hf_model: Any = AutoModelForCausalLM.from_pretrained(model_dir)
    hf_model = hf_model.to(args.device).eval()
    raw_one = raw_generate(hf_model, prompt, args.tokens, 1, args.device)
    raw_many = raw_generate(hf_model, prompt, args.tokens, args.concurrency, args.device)
    del hf_model

    config = TransformersInferenceConfig(device=args.device, tiny_model_dir=str(root))
    provider = await get_provider_impl(config, Deps())
    started = time.perf_counter()
    await provider.register_model(
        Model(identifier=TINY_MODEL_ID, provider_resource_id=TINY_MODEL_ID, provider_id="transformers")
    )
    print(f"provider loaded the model in {time.perf_counter() - started:.2f}s")
    try:
        single = await provider_streams(provider, args.tokens, 1)
        concurrent = await provider_streams(provider, args.tokens, args.concurrency)
        largest = provider.loaded_model(TINY_MODEL_ID).engine.stats().largest_batch
    finally:
        await provider.shutdown()

    n = args.concurrency
    print(f"\nprompt {len(prompt)} tokens, {args.tokens} new tokens per request, device {args.device}")
    print(f"raw generate, batch 1         {raw_one:8.1f} tok/s")
    print(f"raw generate, static batch {n}  {raw_many:8.1f} tok/s")
    print(f"provider, 1 stream            {single:8.1f} tok/s   ({single / raw_one:.2f}x raw batch 1)")
    print(
        f"provider, {n} concurrent        {concurrent:8.1f} tok/s   ({concurrent / single:.2f}x provider single, "
        f"{concurrent / raw_many:.2f}x raw batch {n}; largest decode batch {largest})"
    )


if __name__ == "__main__":
    asyncio.run(main())
