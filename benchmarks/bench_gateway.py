"""The latency and throughput the stack adds in front of a fast OpenAI-compatible backend.

Starts the fake OpenAI server (tests/fakes/openai_server.py) and a stack server whose inference
provider is remote::vllm pointed at it, each pinned to its own core when `taskset` exists
(the gateway gets one core). Then, in one run:
  * latency: sequential requests, backend direct vs through the stack (/v1 and /alpha),
    non-streaming and streaming; p50/p99 and what the stack adds;
  * throughput: requests/s at 32 concurrent clients, direct vs through the stack, with wrk
    (apt-get install wrk) or, without it, an asyncio httpx load generator.

    python -m benchmarks.bench_gateway [--requests 2000] [--seconds 10] [--clients 32] [--profile gw.prof]

--profile runs the gateway under cProfile (slower: its numbers are not the gateway's latency), writes
the stats to that file when the gateway exits and prints the functions with the most own time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.harness import (
    MODEL,
    Server,
    fake_backend,
    percentile,
    ratio,
    remote_vllm_config,
    stack,
    table,
)

PROMPT = [{"role": "user", "content": "Say hello."}]


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

    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as state, fake_backend(core=1) as backend:
        config = remote_vllm_config(backend.url, Path(state))
        with stack(config, core=0, profile=args.profile) as through:  # the gateway gets one core
            report(backend, through, args)
    if args.profile is not None:
        print_profile(args.profile)


def print_profile(path: Path, top: int = 40) -> None:
    import pstats

    print(f"\ngateway profile: {path} (the functions with the most own time)")
    pstats.Stats(str(path)).sort_stats("tottime").print_stats(top)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` (Linux /proc): what a request costs the server
    itself, a figure that other load on the machine barely moves, unlike latency."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(pid: int, url: str, body: dict[str, Any], count: int, stream: bool) -> tuple[list[float], float]:
    """Latencies of `count` sequential requests and the server's CPU ms per request meanwhile."""
    before = cpu_seconds(pid)
    samples = latencies(url, body, count, stream)
    return samples, (cpu_seconds(pid) - before) * 1000 / (count + count // 10)


def report(backend: Server, through: Server, args: argparse.Namespace) -> None:
    openai_body = {"model": MODEL, "messages": PROMPT, "max_tokens": 16}
    alpha_body = {"model_id": MODEL, "messages": PROMPT, "sampling_params": {"max_tokens": 16}}
    cases: list[tuple[str, str, dict[str, Any], str, dict[str, Any]]] = [
        (
            "non-stream",
            f"{backend.url}/v1/chat/completions",
            openai_body,
            f"{through.url}/v1/chat/completions",
            openai_body,
        ),
        (
            "non-stream /alpha",
            f"{backend.url}/v1/chat/completions",
            openai_body,
            f"{through.url}/alpha/inference/chat-completion",
            alpha_body,
        ),
        (
            "stream",
            f"{backend.url}/v1/chat/completions",
            {**openai_body, "stream": True},
            f"{through.url}/v1/chat/completions",
            {**openai_body, "stream": True},
        ),
    ]
    rows = []
    for name, direct_url, direct_body, stack_url, stack_body in cases:
        stream = bool(direct_body.get("stream"))
        direct, direct_cpu = timed(backend.pid, direct_url, direct_body, args.requests, stream)
        via_stack, stack_cpu = timed(through.pid, stack_url, stack_body, args.requests, stream)
        d50, s50 = percentile(direct, 0.5), percentile(via_stack, 0.5)
        d99, s99 = percentile(direct, 0.99), percentile(via_stack, 0.99)
        rows.append(
            [
                name,
                f"{d50:.2f}",
                f"{s50:.2f}",
                f"{s50 - d50:.2f}",
                f"{d99:.2f}",
                f"{s99:.2f}",
                f"{s99 - d99:.2f}",
                f"{direct_cpu:.3f}",
                f"{stack_cpu:.3f}",
            ]
        )
    print(f"latency, {args.requests} sequential requests (ms; baseline: the backend direct)")
    print("cpu: the CPU ms each request cost the backend process (direct) and the stack process")
    headers = ["case", "direct p50", "stack p50", "added p50", "direct p99", "stack p99", "added p99"]
    headers += ["backend cpu", "stack cpu"]
    print(table(headers, rows))
    tool = "wrk" if shutil.which("wrk") else "httpx"
    print(f"\nthroughput, {args.clients} clients for {args.seconds}s (requests/s; {tool})")
    direct_rps = throughput(f"{backend.url}/v1/chat/completions", openai_body, args.seconds, args.clients)
    stack_rps = throughput(f"{through.url}/v1/chat/completions", openai_body, args.seconds, args.clients)
    rows = [
        ["backend direct", f"{direct_rps:.0f}", "1.00x"],
        ["through the stack", f"{stack_rps:.0f}", ratio(stack_rps, direct_rps)],
    ]
    print(table(["", "requests/s", "vs direct"], rows))


if __name__ == "__main__":
    main()
