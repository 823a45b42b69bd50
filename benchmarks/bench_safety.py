"""What shields cost, on scripted models with fixed delays (no weights needed):

1. the latency a Llama Guard shield adds to a chat completion, input and output guard, for a
   guard model answering in 0 ms (the shield machinery alone) and in `--guard-ms`;
2. streamed-output guarding: total time and time to first token of a guarded stream against the
   bare stream, checking every sentence or every N deltas, with a fast and a slow guard;
3. CodeShield scan times on real code (when the codeshield extra is installed).

    python -m benchmarks.bench_safety [--token-ms 5] [--tokens 200] [--guard-ms 20] [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from llama_stack.apis.inference import ChatCompletionRequest, Inference
from llama_stack.apis.safety import Guardrails, RunShieldRequest
from llama_stack.distribution.guardrails import GuardedChat, guarded_chat
from llama_stack.distribution.provider import Api
from llama_stack.distribution.resolver import Stack, build_stack
from llama_stack.distribution.spec import parse_run_config
from tests.providers.safety.stacks import install_safety_providers, safety_run_config

SENTENCE = "This is a calm and harmless sentence about baking bread."  # 10 words: 10 deltas


def answer_prompt(tokens: int) -> str:
    words = (SENTENCE + " ") * (tokens // 10 + 1)
    return " ".join(words.split()[: tokens - 1])  # the echo model adds "echo:" as its first token


async def timed(call: Callable[[], Awaitable[Any]], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


async def stack_with(token_ms: float, guard_ms: float) -> Stack:
    folder = Path(tempfile.mkdtemp(prefix="bench-safety-"))
    config = safety_run_config(folder, token_delay_s=token_ms / 1000, guard_delay_s=guard_ms / 1000)
    return await build_stack(parse_run_config(config, env={}))


def request(text: str, stream: bool = False) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate(
        {"model_id": "echo", "messages": [{"role": "user", "content": text}], "stream": stream}
    )


async def chat_for(stack: Stack, guardrails: dict[str, Any] | None) -> Inference | GuardedChat:
    """What a face calls: the inference router, inside the guardrails when some are asked for."""
    inference = stack.routers[Api.inference]
    if not guardrails:
        return inference
    return await guarded_chat(stack, inference, Guardrails.model_validate(guardrails))


async def chat_once(stack: Stack, text: str, guardrails: dict[str, Any] | None) -> None:
    await (await chat_for(stack, guardrails)).chat_completion(request(text))


async def stream_once(stack: Stack, text: str, guardrails: dict[str, Any] | None) -> tuple[float, float, int]:
    """Total seconds, seconds to the first text delta, and guard calls made."""
    guard: Any = stack.models.providers["guard"]  # the scripted guard, which records its calls
    calls_before = len(guard.calls)
    started = time.perf_counter()
    chat = await chat_for(stack, guardrails)
    first = None
    async for chunk in chat.chat_completion_stream(request(text, stream=True)):
        if first is None and isinstance(chunk.event.delta, str) and chunk.event.delta:
            first = time.perf_counter() - started
    return time.perf_counter() - started, first or 0.0, len(guard.calls) - calls_before


async def latency_rows(stack: Stack, text: str, repeat: int) -> dict[str, float]:
    shield_request = RunShieldRequest.model_validate(
        {"shield_id": "llama_guard", "messages": [{"role": "user", "content": text}]}
    )
    both = {"input": ["llama_guard"], "output": ["llama_guard"]}
    return {
        "bare chat completion": await timed(lambda: chat_once(stack, text, None), repeat),
        "run_shield alone": await timed(lambda: stack.routers[Api.safety].run_shield(shield_request), repeat),
        "input guard": await timed(lambda: chat_once(stack, text, {"input": ["llama_guard"]}), repeat),
        "input + output guards": await timed(lambda: chat_once(stack, text, both), repeat),
    }


async def shield_latency(args: argparse.Namespace) -> None:
    print(f"\n1. Latency a Llama Guard shield adds ({args.tokens}-token answer, {args.token_ms} ms/token)")
    print(f"{'guard model':>14} {'call':<30} {'median ms':>10} {'added ms':>9} {'ratio':>6}")
    text = answer_prompt(args.tokens)
    for guard_ms in (0.0, args.guard_ms):
        stack = await stack_with(args.token_ms, guard_ms)
        try:
            rows = await latency_rows(stack, text, args.repeat)
        finally:
            await stack.shutdown()
        bare = rows["bare chat completion"]
        for name, seconds in rows.items():
            added = seconds if name == "run_shield alone" else seconds - bare
            label = f"{guard_ms:.0f} ms/call"
            print(f"{label:>14} {name:<30} {seconds * 1000:>10.1f} {added * 1000:>9.1f} {seconds / bare:>6.2f}")


async def stream_median(stack: Stack, text: str, guardrails: dict[str, Any] | None, repeat: int) -> list[float]:
    runs = [await stream_once(stack, text, guardrails) for _ in range(repeat)]
    return [statistics.median(run[i] for run in runs) for i in range(3)]


async def stream_cost(args: argparse.Namespace) -> None:
    print(f"\n2. Streamed-output guarding ({args.tokens} tokens at {args.token_ms} ms, sentences of 10 tokens)")
    print(f"{'guard model':>14} {'check every':<12} {'total ms':>9} {'ratio':>6} {'TTFT ms':>8} {'checks':>7}")
    text = answer_prompt(args.tokens)
    for guard_ms in (args.guard_ms, args.guard_ms * 10):
        stack = await stack_with(args.token_ms, guard_ms)
        try:
            bare_total, bare_first, _ = await stream_median(stack, text, None, args.repeat)
            print(f"{'-':>14} {'unguarded':<12} {bare_total * 1000:>9.1f} {1.0:>6.2f} {bare_first * 1000:>8.1f} {0:>7}")
            for every in ("sentence", 16):
                guardrails = {"output": ["llama_guard"], "check_every": every}
                total, first, checks = await stream_median(stack, text, guardrails, args.repeat)
                label = f"{guard_ms:.0f} ms/call"
                print(
                    f"{label:>14} {every!s:<12} {total * 1000:>9.1f} {total / bare_total:>6.2f} "
                    f"{first * 1000:>8.1f} {checks:>7.0f}"
                )
        finally:
            await stack.shutdown()


async def codeshield_scans(args: argparse.Namespace) -> None:
    if importlib.util.find_spec("codeshield") is None:
        print("\n3. CodeShield: not installed (pip install codeshield 'semgrep==1.100.0')")
        return
    from llama_stack.distribution.provider import Deps
    from llama_stack.providers.safety.code_scanner import CodeScannerConfig, get_provider_impl

    started = time.perf_counter()
    try:
        scanner = await get_provider_impl(CodeScannerConfig(), Deps())
    except RuntimeError as e:  # semgrep-core not found: scripts/install-codeshield.sh prints its folder
        print(f"\n3. CodeShield: {e}")
        return
    print(f"\n3. CodeShield scans (startup with self-test: {(time.perf_counter() - started) * 1000:.0f} ms)")
    md5 = "import hashlib\ndef h(pw):\n    return hashlib.md5(pw.encode()).hexdigest()\n"
    shell = "import subprocess\ndef run(arg):\n    subprocess.call('ls ' + arg, shell=True)\n"
    cases = {
        "md5, fenced python (regex hit)": f"```python\n{md5}```",
        "shell=True, fenced python (semgrep)": f"```python\n{shell}```",
        "shell=True, unfenced (all languages)": shell,
        "safe code, fenced python": "```python\ndef add(a, b):\n    return a + b\n```",
        "prose, no code (all languages)": "Paris is the capital of France. " * 5,
    }
    for name, text in cases.items():
        shield_request = RunShieldRequest.model_validate(
            {"shield_id": "code", "messages": [{"role": "assistant", "content": text}]}
        )
        seconds = await timed(lambda r=shield_request: scanner.run_shield(r), args.repeat)  # type: ignore[misc]
        print(f"   {name:<40} {seconds * 1000:>8.1f} ms")


async def main(args: argparse.Namespace) -> None:
    install_safety_providers()
    await shield_latency(args)
    await stream_cost(args)
    await codeshield_scans(args)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--token-ms", type=float, default=5.0, help="per-token delay of the chat model")
    parser.add_argument("--tokens", type=int, default=200, help="tokens in the answer")
    parser.add_argument("--guard-ms", type=float, default=20.0, help="per-call latency of the guard model")
    parser.add_argument("--repeat", type=int, default=5, help="runs per measurement (median reported)")
    asyncio.run(main(parser.parse_args()))
