"""The demo distribution end to end: startup time of `llama stack run demo`, then tokens/s of the
tiny model through the HTTP server (1 stream and N concurrent) against raw `generate` on the
same model and prompt, measured in the same run.

    python -m benchmarks.bench_server [--tokens 128] [--concurrency 4]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import httpx

from benchmarks.bench_tiny_generate import PROMPT, raw_generate
from benchmarks.harness import Server, stack

MODEL = "tiny-random-llama-3"


def demo(state: Path) -> AbstractContextManager[Server]:
    env = {
        "SQLITE_STORE_DIR": str(state),
        "LLAMA_TINY_MODEL_DIR": str(state / "tiny"),
        "HF_HUB_OFFLINE": "1",
    }
    return stack("demo", env=env)


async def through_server(base_url: str, tokens: int, streams: int) -> float:
    body: dict[str, Any] = {
        "model_id": MODEL,
        "messages": [{"role": "user", "content": PROMPT}],
        "sampling_params": {"strategy": "greedy", "max_tokens": tokens},
    }
    async with httpx.AsyncClient(base_url=base_url, timeout=300) as http:
        warm = {**body, "sampling_params": {"strategy": "greedy", "max_tokens": 4}}
        await http.post("/alpha/inference/chat-completion", json=warm)

        async def one() -> None:
            response = await http.post("/alpha/inference/chat-completion", json=body)
            assert response.json()["completion_message"]["stop_reason"] == "out_of_tokens"

        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(streams)))
        return streams * tokens / (time.perf_counter() - started)


async def first_token_ms(base_url: str, repeats: int = 10) -> float:
    """Median time to the first text delta of a streamed chat completion."""
    body = {
        "model_id": MODEL,
        "messages": [{"role": "user", "content": PROMPT}],
        "sampling_params": {"strategy": "greedy", "max_tokens": 8},
        "stream": True,
    }
    samples = []
    async with httpx.AsyncClient(base_url=base_url, timeout=300) as http:
        for _ in range(repeats):
            started = time.perf_counter()
            async with http.stream("POST", "/alpha/inference/chat-completion", json=body) as response:
                async for line in response.aiter_lines():
                    if '"event_type":"progress"' in line:
                        samples.append((time.perf_counter() - started) * 1000)
                        break
    return sorted(samples)[len(samples) // 2]


def raw_first_token_ms(model: Any, prompt: list[int], repeats: int = 10) -> float:
    import torch

    input_ids = torch.tensor([prompt])
    samples = []
    with torch.inference_mode():
        for _ in range(repeats):
            started = time.perf_counter()
            model.generate(input_ids, max_new_tokens=1, do_sample=False, pad_token_id=128004)
            samples.append((time.perf_counter() - started) * 1000)
    return sorted(samples)[len(samples) // 2]


def raw_figures(model_dir: Path, tokens: int, batch: int) -> tuple[float, float, float, int]:
    import torch
    from transformers import AutoModelForCausalLM

    from llama_stack.apis.common import UserMessage
    from llama_stack.models.chat_format import encode_dialog

    torch.set_num_threads(os.cpu_count() or 1)
    prompt = encode_dialog([UserMessage(content=PROMPT)], model_id=MODEL)
    model: Any = AutoModelForCausalLM.from_pretrained(model_dir)
    model.eval()
    return (
        raw_generate(model, prompt, tokens, 1, "cpu"),
        raw_generate(model, prompt, tokens, batch, "cpu"),
        raw_first_token_ms(model, prompt),
        len(prompt),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-demo-") as scratch:
        state = Path(scratch)
        with demo(state) as first:  # builds the tiny model on first use
            cold = first.startup_s
        with demo(state) as server:
            warm = server.startup_s
            server_ttft = asyncio.run(first_token_ms(server.url))
            server_one = asyncio.run(through_server(server.url, args.tokens, 1))
            server_many = asyncio.run(through_server(server.url, args.tokens, args.concurrency))
        raw_one, raw_many, raw_ttft, prompt_tokens = raw_figures(state / "tiny" / MODEL, args.tokens, args.concurrency)

    n = args.concurrency
    print(f"startup to healthy: {cold:.2f}s first run (builds the tiny model), {warm:.2f}s after")
    print(f"prompt {prompt_tokens} tokens, {args.tokens} new tokens per request, CPU")
    print(f"time to first token: raw generate {raw_ttft:.1f} ms, through the server (HTTP stream) {server_ttft:.1f} ms")
    print(f"raw generate, batch 1            {raw_one:8.1f} tok/s")
    print(f"raw generate, static batch {n}     {raw_many:8.1f} tok/s")
    print(f"server, 1 stream                 {server_one:8.1f} tok/s  ({server_one / raw_one:.2f}x raw batch 1)")
    print(
        f"server, {n} concurrent requests    {server_many:8.1f} tok/s  ({server_many / server_one:.2f}x server "
        f"single, {server_many / raw_many:.2f}x raw batch {n})"
    )


if __name__ == "__main__":
    main()
