"""Streaming under load: many concurrent clients, each sending streaming chat completions one
after the other for a bounded time, against the fake OpenAI backend directly (the baseline) and
through a stack whose remote::vllm provider is in front of it, in the same run. Prints streams/s,
time to the first byte and latency percentiles, errors, and the stack server's RSS before, at
the peak and after the load. (tests/system/test_load.py asserts the behaviour under such a load:
no error, nothing left open, memory flat; this prints the figures.)

    python -m benchmarks.bench_load [--clients 300] [--seconds 30]

The client is Python (httpx), so on a small machine it, not the server, can bound the rate;
the baseline row shows where that bound is.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from benchmarks.harness import MODEL, fake_backend, percentile, ratio, remote_vllm_config, rss_mb, stack, table

PROMPT = [{"role": "user", "content": "Say hello."}]


@dataclass
class Figures:
    streams: int = 0
    errors: int = 0
    seconds: float = 0.0
    ttfb_ms: list[float] = field(default_factory=list)
    latency_ms: list[float] = field(default_factory=list)

    def row(self, name: str, baseline: Figures | None) -> list[Any]:
        rate = self.streams / self.seconds
        versus = ratio(rate, baseline.streams / baseline.seconds) if baseline else "1.00x"
        ttfb = percentile(self.ttfb_ms, 0.5) if self.ttfb_ms else 0.0
        p50, p99 = (percentile(self.latency_ms, q) for q in (0.5, 0.99)) if self.latency_ms else (0.0, 0.0)
        return [name, self.streams, self.errors, f"{rate:.0f}", versus, f"{ttfb:.0f}", f"{p50:.0f}", f"{p99:.0f}"]


async def one_stream(http: httpx.AsyncClient, path: str, body: dict[str, Any], figures: Figures) -> None:
    started = time.perf_counter()
    first = None
    ended = False
    try:
        async with http.stream("POST", path, json=body) as response:
            async for line in response.aiter_lines():
                first = first or time.perf_counter()
                ended = ended or line == "data: [DONE]" or '"event_type":"complete"' in line
            ok = response.status_code == 200 and ended
    except httpx.HTTPError:
        ok = False
    if not ok:
        figures.errors += 1
        return
    figures.streams += 1
    figures.latency_ms.append((time.perf_counter() - started) * 1000)
    if first is not None:
        figures.ttfb_ms.append((first - started) * 1000)


async def load(base_url: str, path: str, body: dict[str, Any], clients: int, seconds: float) -> Figures:
    figures = Figures()
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    deadline = time.perf_counter() + seconds
    async with httpx.AsyncClient(base_url=base_url, timeout=120, limits=limits) as http:

        async def client() -> None:
            while time.perf_counter() < deadline:
                await one_stream(http, path, body, figures)

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        figures.seconds = time.perf_counter() - started
    return figures


class PeakRss:
    """Samples a process's RSS every 0.2 s in a thread, for the peak."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak = pid, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mb(self.pid))
            self._stop.wait(0.2)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=30)
    args = parser.parse_args()
    v1 = {"model": MODEL, "messages": PROMPT, "stream": True, "stream_options": {"include_usage": True}}
    alpha = {"model_id": MODEL, "messages": PROMPT, "stream": True}
    with tempfile.TemporaryDirectory(prefix="bench-load-") as state, fake_backend(core=1) as backend:
        with stack(remote_vllm_config(backend.url, Path(state)), core=0) as server:
            chat = "/v1/chat/completions"
            asyncio.run(load(server.url, chat, v1, 4, 1.0))  # warm-up: connections, caches
            rss_before = rss_mb(server.pid)
            direct = asyncio.run(load(backend.url, chat, v1, args.clients, args.seconds))
            with PeakRss(server.pid) as peak:
                through_v1 = asyncio.run(load(server.url, chat, v1, args.clients, args.seconds))
                path = "/alpha/inference/chat-completion"
                through_alpha = asyncio.run(load(server.url, path, alpha, args.clients, args.seconds))
            time.sleep(2)
            rss_after = rss_mb(server.pid)
    print(f"{args.clients} concurrent clients streaming chat completions for {args.seconds:g}s each row (httpx)")
    headers = ["", "streams", "errors", "streams/s", "vs direct", "TTFB p50 ms", "p50 ms", "p99 ms"]
    rows = [
        direct.row("backend direct (/v1)", None),
        through_v1.row("through the stack, /v1", direct),
        through_alpha.row("through the stack, /alpha", direct),
    ]
    print(table(headers, rows))
    print(f"\nstack server RSS: {rss_before:.1f} MiB before, {peak.peak:.1f} at the peak, {rss_after:.1f} after")


if __name__ == "__main__":
    main()
