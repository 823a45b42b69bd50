"""The latency and throughput the stack adds in front of a fast OpenAI-compatible backend.

Starts the fake OpenAI server (tests/fakes/openai_server.py) and a stack server whose inference
provider is remote::vllm pointed at it, each pinned to its own core when `taskset` exists
(the gateway gets one core). Then, in one run:
  * latency: sequential requests, backend direct vs through the stack (/v1 and /alpha),
    non-streaming and streaming; p50/p99 and what the stack adds;
  * throughput: requests/s at 32 concurrent clients, direct vs through the stack, with wrk
    (apt-get install wrk) or, without it, an asyncio httpx load generator.

    python -m scripts.bench_gateway [--requests 2000] [--seconds 10] [--clients 32] [--profile gw.prof]

--profile runs the gateway under cProfile (slower: its numbers are not the gateway's latency), writes
the stats to that file when the gateway exits and prints the functions with the most own time.
The children's stderr goes to a file, never a pipe nobody reads (a full pipe would stall a server
that logs per request).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.servers import free_port

MODEL = "meta-llama/Llama-3.2-3B-Instruct"
PROMPT = [{"role": "user", "content": "Say hello."}]


def pinned(core: int, command: list[str]) -> list[str]:
    return ["taskset", "-c", str(core), *command] if shutil.which("taskset") and (os.cpu_count() or 1) > 1 else command


@contextmanager
def process(command: list[str], health_url: str, env: dict[str, str] | None = None) -> Iterator[None]:
    errors = tempfile.TemporaryFile("w+")
    child = subprocess.Popen(
        command, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL, stderr=errors, text=True
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            if child.poll() is not None:
                errors.seek(0)
                raise SystemExit(f"{command[0]} exited: {errors.read()[-4000:]}")
            try:
                if httpx.get(health_url, timeout=1).status_code < 500:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"{' '.join(command)} did not start")
            time.sleep(0.1)
        yield
    finally:
        child.terminate()
        child.wait(timeout=60)
        errors.close()


def latencies(url: str, body: dict[str, Any], count: int, stream: bool) -> list[float]:
    samples = []
    with httpx.Client(timeout=30) as http:
        for i in range(count + count // 10):
            started = time.perf_counter()
            if stream:
                with http.stream("POST", url, json=body) as response:
                    for _ in response.iter_bytes():
                        pass
            else:
                http.post(url, json=body).raise_for_status()
            if i >= count // 10:  # the first tenth warms connections and caches
                samples.append((time.perf_counter() - started) * 1000)
    return samples


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def wrk_rps(url: str, body: dict[str, Any], seconds: int, clients: int) -> float:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(
            f'wrk.method = "POST"\nwrk.body = {json.dumps(json.dumps(body))}\n'
            'wrk.headers["Content-Type"] = "application/json"\n'
        )
    output = subprocess.run(
        ["wrk", "-t2", f"-c{clients}", f"-d{seconds}s", "-s", script.name, url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if errors:
        raise SystemExit(f"{errors.group(1)} failed requests against {url}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", output)
    return float(match.group(1)) if match else 0.0


async def httpx_rps(url: str, body: dict[str, Any], seconds: int, clients: int) -> float:
    done = 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=30, limits=limits) as http:

        async def client() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                (await http.post(url, json=body)).raise_for_status()
                done += 1

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        return done / (time.perf_counter() - started)


def throughput(url: str, body: dict[str, Any], seconds: int, clients: int) -> float:
    if shutil.which("wrk"):
        return wrk_rps(url, body, seconds, clients)
    return asyncio.run(httpx_rps(url, body, seconds, clients))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--profile", type=Path, default=None, help="run the gateway under cProfile, stats here")
    args = parser.parse_args()

    backend_port, stack_port = free_port(), free_port()
    backend = f"http://127.0.0.1:{backend_port}"
    stack = f"http://127.0.0.1:{stack_port}"
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as scratch:
        run_yaml = Path(scratch) / "run.yaml"
        run_yaml.write_text(
            yaml.safe_dump(
                {
                    "version": 2,
                    "image_name": "bench",
                    "providers": {
                        "inference": [
                            {
                                "provider_id": "vllm",
                                "provider_type": "remote::vllm",
                                "config": {"url": f"{backend}/v1", "max_retries": 0},
                            }
                        ]
                    },
                    "metadata_store": {"type": "sqlite", "db_path": f"{scratch}/registry.db"},
                    "models": [{"model_id": MODEL, "provider_id": "vllm", "provider_model_id": MODEL}],
                }
            )
        )
        fake = [sys.executable, "-m", "tests.fakes.openai_server", "--port", str(backend_port)]
        run = ["stack", "run", str(run_yaml), "--port", str(stack_port)]
        if args.profile is None:
            gateway = [str(Path(sys.executable).with_name("llama")), *run]
        else:
            profiler = [sys.executable, "-m", "cProfile", "-o", str(args.profile.resolve())]
            gateway = [*profiler, "-m", "llama_stack.cli.main", *run]
        with process(pinned(1, fake), f"{backend}/v1/models"), process(pinned(0, gateway), f"{stack}/alpha/health"):
            report(backend, stack, args)
    if args.profile is not None:
        print_profile(args.profile)


def print_profile(path: Path, top: int = 40) -> None:
    import pstats

    print(f"\ngateway profile: {path} (the functions with the most own time)")
    pstats.Stats(str(path)).sort_stats("tottime").print_stats(top)


def report(backend: str, stack: str, args: argparse.Namespace) -> None:
    openai_body = {"model": MODEL, "messages": PROMPT, "max_tokens": 16}
    alpha_body = {"model_id": MODEL, "messages": PROMPT, "sampling_params": {"max_tokens": 16}}
    cases: list[tuple[str, str, dict[str, Any], str, dict[str, Any]]] = [
        ("non-stream", f"{backend}/v1/chat/completions", openai_body, f"{stack}/v1/chat/completions", openai_body),
        (
            "non-stream /alpha",
            f"{backend}/v1/chat/completions",
            openai_body,
            f"{stack}/alpha/inference/chat-completion",
            alpha_body,
        ),
        (
            "stream",
            f"{backend}/v1/chat/completions",
            {**openai_body, "stream": True},
            f"{stack}/v1/chat/completions",
            {**openai_body, "stream": True},
        ),
    ]
    print(f"latency, {args.requests} sequential requests (ms)")
    print(
        f"{'case':<20}{'direct p50':>12}{'stack p50':>12}{'added p50':>12}{'direct p99':>12}{'stack p99':>12}"
        f"{'added p99':>12}"
    )
    for name, direct_url, direct_body, stack_url, stack_body in cases:
        stream = bool(direct_body.get("stream"))
        direct = latencies(direct_url, direct_body, args.requests, stream)
        through = latencies(stack_url, stack_body, args.requests, stream)
        d50, s50, d99, s99 = (
            percentile(direct, 0.5),
            percentile(through, 0.5),
            percentile(direct, 0.99),
            percentile(through, 0.99),
        )
        print(f"{name:<20}{d50:>12.2f}{s50:>12.2f}{s50 - d50:>12.2f}{d99:>12.2f}{s99:>12.2f}{s99 - d99:>12.2f}")
    print(
        f"\nthroughput, {args.clients} clients for {args.seconds}s (requests/s; "
        f"{'wrk' if shutil.which('wrk') else 'httpx'})"
    )
    direct_rps = throughput(f"{backend}/v1/chat/completions", openai_body, args.seconds, args.clients)
    stack_rps = throughput(f"{stack}/v1/chat/completions", openai_body, args.seconds, args.clients)
    print(f"backend direct      {direct_rps:10.0f}")
    print(f"through the stack   {stack_rps:10.0f}   ({stack_rps / direct_rps:.2f}x direct)")


if __name__ == "__main__":
    main()
