"""Proof: hundreds of concurrent streaming requests, for a bounded time, without one error, and
the server's memory flat afterwards.

Starts the fake OpenAI backend (tests/fakes/openai_server.py) and a stack server whose inference
provider is remote::vllm pointed at it, each in its own process. Then, per round:
  * --clients concurrent clients (default 300), each sending streaming chat completions one
    after the other for --seconds, alternating the faces (/v1 with include_usage; /alpha);
    every stream is checked to the end: HTTP 200, text/event-stream, every frame JSON, no error
    frame, the /v1 stream closed by `data: [DONE]` with a usage chunk, the /alpha stream by a
    `complete` event, and the text the fake backend sends for that prompt;
  * the server's RSS and open file descriptors are sampled every 0.2 s (peak), and read again
    once the load stopped and the RSS settled (no change over 2 s, at most --settle s).

Each round runs the clients twice: httpx in this process (every frame parsed and checked), then
wrk with a Lua script that checks each body's end (a C client, so the server is the bottleneck).
The proof holds when no request failed, the backend has no stream left open, the server holds
no connection from a client once they left and no more idle connections to the backend than its
pool's bound, its open FDs other than sockets are back where they were, and after the settle the
RSS is within --tolerance-mb of the RSS before the load (with several rounds, the last round's
RSS within --growth-mb of the first round's: no growth per round).

    python -m scripts.prove_load [--clients 300] [--seconds 60] [--rounds 2] [--short]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from scripts.prove_common import FakeBackend, StackServer, Verdict, open_sockets, running, scratch_dir, table
from scripts.prove_load_wrk import WrkResult, wrk_load

MODEL = "meta-llama/Llama-3.2-3B-Instruct"
POOL_MAX = 256  # remote::vllm's max_connections default


def run_config(state: Path, backend_url: str) -> dict[str, Any]:
    return {
        "version": 2,
        "image_name": "prove-load",
        "providers": {
            "inference": [
                {
                    "provider_id": "vllm",
                    "provider_type": "remote::vllm",
                    "config": {"url": backend_url, "max_retries": 0},
                }
            ]
        },
        "metadata_store": {"type": "sqlite", "db_path": str(state / "registry.db")},
        "models": [{"model_id": MODEL, "provider_id": "vllm", "provider_model_id": MODEL}],
    }


# --- one streamed request, checked to its end ------------------------------------------------------


def v1_body(n: int) -> dict[str, Any]:
    messages = [{"role": "user", "content": f"Say hello to visitor {n}."}]
    return {"model": MODEL, "messages": messages, "stream": True, "stream_options": {"include_usage": True}}


def alpha_body(n: int) -> dict[str, Any]:
    return {"model_id": MODEL, "messages": [{"role": "user", "content": f"Say hello to visitor {n}."}], "stream": True}


def check_v1(frames: list[str]) -> tuple[str, str | None]:
    if not frames or frames[-1] != "[DONE]":
        return "", "the stream did not end with [DONE]"
    chunks = [json.loads(frame) for frame in frames[:-1]]
    if any("error" in chunk for chunk in chunks):
        return "", f"an error frame: {next(c for c in chunks if 'error' in c)}"
    if not chunks[-1].get("usage"):
        return "", "no usage chunk"
    text = "".join((c["choices"][0]["delta"].get("content") or "") for c in chunks if c.get("choices"))
    return text, None


def check_alpha(frames: list[str]) -> tuple[str, str | None]:
    events = [json.loads(frame) for frame in frames]
    if any("error" in event for event in events):
        return "", f"an error frame: {next(e for e in events if 'error' in e)}"
    if not events or events[-1]["event"]["event_type"] != "complete":
        return "", "the stream did not end with a complete event"
    text = "".join(e["event"]["delta"] for e in events if isinstance(e["event"].get("delta"), str))
    return text, None


@dataclass
class Tally:
    requests: int = 0
    by_face: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    first_errors: list[str] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    ttfb_ms: list[float] = field(default_factory=list)
    texts: Counter[str] = field(default_factory=Counter)

    def error(self, kind: str, detail: str) -> None:
        self.errors[kind] += 1
        if len(self.first_errors) < 10:
            self.first_errors.append(f"{kind}: {detail}")


async def one_stream(http: httpx.AsyncClient, face: str, n: int, tally: Tally) -> None:
    path, body = (
        ("/v1/chat/completions", v1_body(n)) if face == "v1" else ("/alpha/inference/chat-completion", alpha_body(n))
    )
    started = time.perf_counter()
    frames: list[str] = []
    try:
        async with http.stream("POST", path, json=body) as response:
            first = None
            if response.status_code != 200:
                tally.error(f"HTTP {response.status_code}", (await response.aread())[:200].decode(errors="replace"))
                return
            if not response.headers.get("content-type", "").startswith("text/event-stream"):
                tally.error("content-type", response.headers.get("content-type", ""))
                return
            async for line in response.aiter_lines():
                if first is None:
                    first = time.perf_counter()
                if line.startswith("data: "):
                    frames.append(line[6:])
    except httpx.HTTPError as e:
        cause = e.__cause__ or e.__context__
        detail = f"{face} after {time.perf_counter() - started:.2f}s, {len(frames)} frames read: {e!r} from {cause!r}"
        tally.error(type(e).__name__, detail)
        return
    try:
        text, problem = check_v1(frames) if face == "v1" else check_alpha(frames)
    except (ValueError, KeyError, IndexError, TypeError) as e:
        text, problem = "", f"unreadable stream ({e!r}): {frames[:3]}"
    if problem is not None:
        tally.error(f"{face} stream", problem)
        return
    tally.requests += 1
    tally.by_face[face] += 1
    tally.texts[text] += 1
    tally.latencies_ms.append((time.perf_counter() - started) * 1000)
    if first is not None:
        tally.ttfb_ms.append((first - started) * 1000)


async def load(base_url: str, clients: int, seconds: float) -> tuple[Tally, float]:
    tally = Tally()
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    deadline = time.perf_counter() + seconds
    async with httpx.AsyncClient(base_url=base_url, timeout=120, limits=limits) as http:

        async def client(index: int) -> None:
            n = 0
            while time.perf_counter() < deadline:
                await one_stream(http, "v1" if (index + n) % 2 == 0 else "alpha", index * 100_000 + n, tally)
                n += 1

        started = time.perf_counter()
        await asyncio.gather(*(client(i) for i in range(clients)))
        return tally, time.perf_counter() - started


# --- the server's figures --------------------------------------------------------------------------


class Sampler:
    """Samples the server's RSS and open FDs in a thread, for the peaks."""

    def __init__(self, server: StackServer, interval_s: float = 0.2) -> None:
        self.server = server
        self.interval_s = interval_s
        self.peak_rss = 0.0
        self.peak_fds = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_rss = max(self.peak_rss, self.server.rss_mb())
            self.peak_fds = max(self.peak_fds, self.server.open_fds())
            self._stop.wait(self.interval_s)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def settled_rss(server: StackServer, max_s: float) -> tuple[float, float]:
    """The RSS once it stopped moving (under 0.5 MiB over 2 s), and the seconds that took."""
    started = time.perf_counter()
    previous = server.rss_mb()
    while time.perf_counter() - started < max_s:
        time.sleep(2)
        now = server.rss_mb()
        if abs(now - previous) < 0.5:
            return now, time.perf_counter() - started
        previous = now
    return server.rss_mb(), time.perf_counter() - started


def warm_up(base_url: str) -> None:
    async def run() -> None:
        tally = Tally()
        async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
            for n in range(40):
                await one_stream(http, "v1" if n % 2 else "alpha", n, tally)
        if tally.errors:
            raise SystemExit(f"the warm-up failed: {tally.first_errors}")

    asyncio.run(run())


# --- one round: both clients, the figures before, at peak and after --------------------------------


@dataclass
class Round:
    tally: Tally
    took_s: float
    wrk: WrkResult | None
    rss_before: float
    fds_before: int
    peak_rss: float
    peak_fds: int
    rss_after: float
    settle_s: float
    fds_after: int
    client_sockets_after: int  # connections from clients still open once they all left
    upstream_idle: int  # kept-alive connections to the backend, idle in the provider's pool
    other_fds_before: int  # open FDs that are not sockets: files, pipes, event fds
    other_fds_after: int
    backend_open_streams: int


def one_round(server: StackServer, backend: FakeBackend, args: argparse.Namespace, scratch: Path) -> Round:
    rss_before, fds_before = server.rss_mb(), server.open_fds()
    other_fds_before = fds_before - open_sockets(server.pid)
    with Sampler(server) as sampler:
        tally, took = asyncio.run(load(server.url, args.clients, args.seconds))
        wrk = wrk_load(server.url, args.clients, args.seconds, scratch, v1_body(0), alpha_body(0))
    rss_after, settle_s = settled_rss(server, args.settle)
    fds_after, other_fds_after = server.open_fds(), server.open_fds() - open_sockets(server.pid)
    client_sockets, upstream = sockets(server, backend)
    return Round(
        tally=tally,
        took_s=took,
        wrk=wrk,
        rss_before=rss_before,
        fds_before=fds_before,
        peak_rss=sampler.peak_rss,
        peak_fds=sampler.peak_fds,
        rss_after=rss_after,
        settle_s=settle_s,
        fds_after=fds_after,
        client_sockets_after=client_sockets,
        upstream_idle=upstream,
        other_fds_before=other_fds_before,
        other_fds_after=other_fds_after,
        backend_open_streams=int(backend.stats()["open_streams"]),
    )


def sockets(server: StackServer, backend: FakeBackend) -> tuple[int, int]:
    """The server's TCP connections from clients, and to the backend."""
    import psutil

    connections = psutil.Process(server.pid).net_connections(kind="tcp")
    from_clients = sum(1 for c in connections if c.raddr and c.laddr.port == server.port)
    to_backend = sum(1 for c in connections if c.raddr and c.raddr.port == backend.port)
    return from_clients, to_backend


def traffic_rows(rounds: list[Round]) -> list[list[Any]]:
    rows: list[list[Any]] = []
    for i, r in enumerate(rounds, 1):
        t = r.tally
        p99 = statistics.quantiles(t.latencies_ms, n=100)[98] if len(t.latencies_ms) > 1 else 0.0
        ttfb = statistics.median(t.ttfb_ms) if t.ttfb_ms else 0.0
        median = statistics.median(t.latencies_ms) if t.latencies_ms else 0.0
        rows.append(
            [
                i,
                "httpx (checked in Python)",
                t.requests,
                sum(t.errors.values()),
                f"{t.requests / r.took_s:.0f}",
                f"{ttfb:.0f}",
                f"{median:.0f}",
                f"{p99:.0f}",
            ]
        )
        if r.wrk is not None:
            w = r.wrk
            rows.append(
                [
                    i,
                    "wrk (checked in Lua)",
                    w.ok,
                    w.failed + (1 if w.socket_errors else 0),
                    f"{w.ok / w.seconds:.0f}",
                    "-",
                    f"{w.p50_ms:.0f}",
                    f"{w.p99_ms:.0f}",
                ]
            )
    return rows


def server_rows(rounds: list[Round]) -> list[list[Any]]:
    return [
        [
            i,
            f"{r.rss_before:.1f}",
            f"{r.peak_rss:.1f}",
            f"{r.rss_after:.1f} ({r.settle_s:.0f}s)",
            f"{r.fds_before}/{r.peak_fds}/{r.fds_after}",
            f"{r.other_fds_before}/{r.other_fds_after}",
            r.client_sockets_after,
            r.upstream_idle,
            r.backend_open_streams,
        ]
        for i, r in enumerate(rounds, 1)
    ]


def report(rounds: list[Round], args: argparse.Namespace, baseline: tuple[float, int]) -> Verdict:
    verdict = Verdict()
    clients = args.clients
    print(
        f"\nload: {clients} concurrent clients, each sending streaming chat completions one after the other "
        f"(/v1 with usage and /alpha, alternating) for {args.seconds:g}s with httpx, then {args.seconds:g}s "
        "with wrk; remote::vllm in front of the fake backend"
    )
    print(
        table(
            ["round", "client", "streams ok", "errors", "streams/s", "TTFB p50 ms", "p50 ms", "p99 ms"],
            traffic_rows(rounds),
        )
    )
    base_rss, base_fds = baseline
    print(f"\nthe server (after warm-up: RSS {base_rss:.1f} MiB, {base_fds} open FDs)")
    print(
        table(
            [
                "round",
                "RSS before MiB",
                "peak",
                "after (settle)",
                "FDs before/peak/after",
                "non-socket FDs before/after",
                "client sockets after",
                "idle upstream",
                "backend streams open",
            ],
            server_rows(rounds),
        )
    )
    for i, r in enumerate(rounds, 1):
        for line in r.tally.first_errors:
            print(f"  round {i} httpx error: {line}")
        verdict.check(
            f"round {i}: {r.tally.requests} httpx streams, no error", not r.tally.errors, str(dict(r.tally.errors))
        )
        if r.wrk is not None:
            failures = f"{r.wrk.failed} failed; socket errors: {r.wrk.socket_errors or 'none'} {r.wrk.first_failure}"
            verdict.check(
                f"round {i}: {r.wrk.ok} wrk streams, no error",
                r.wrk.failed == 0 and not r.wrk.socket_errors and r.wrk.ok > 0,
                failures,
            )
        verdict.check(
            f"round {i}: {clients} clients were served at once", r.peak_fds >= clients, f"peak {r.peak_fds} open FDs"
        )
        verdict.check(f"round {i}: every stream carried its answer", "" not in r.tally.texts)
        verdict.check(f"round {i}: the backend has no stream left open", r.backend_open_streams == 0)
        verdict.check(f"round {i}: no client connection left open", r.client_sockets_after == 0)
        verdict.check(
            f"round {i}: idle upstream connections within the pool's bound ({POOL_MAX})",
            r.upstream_idle <= POOL_MAX,
            str(r.upstream_idle),
        )
    last = rounds[-1]
    growth = last.rss_after - base_rss
    peak = max(r.peak_rss for r in rounds)
    verdict.check(
        f"RSS after the load within {args.tolerance_mb:g} MiB of before",
        growth <= args.tolerance_mb,
        f"{base_rss:.1f} -> peak {peak:.1f} -> {last.rss_after:.1f} MiB ({growth:+.1f})",
    )
    if len(rounds) > 1:
        per_round = last.rss_after - rounds[0].rss_after
        verdict.check(
            f"no RSS growth from round 1 to round {len(rounds)} (within {args.growth_mb:g} MiB)",
            per_round <= args.growth_mb,
            f"{per_round:+.1f} MiB",
        )
    verdict.check(
        "open FDs other than sockets back where they were (no file, pipe or event-fd leak)",
        all(r.other_fds_after <= r.other_fds_before for r in rounds),
        ", ".join(f"{r.other_fds_before} -> {r.other_fds_after}" for r in rounds),
    )
    return verdict


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--settle", type=float, default=30, help="most seconds to wait for the RSS to settle")
    parser.add_argument("--tolerance-mb", type=float, default=40, help="RSS after the load vs before it")
    parser.add_argument("--growth-mb", type=float, default=5, help="RSS after the last round vs after the first")
    parser.add_argument("--short", action="store_true", help="a quick run for the test tier")
    args = parser.parse_args()
    if args.short:
        args.clients, args.seconds, args.rounds, args.settle = min(args.clients, 200), 5, 1, 10
    with scratch_dir("prove-load-") as scratch:
        backend = FakeBackend(scratch).start()
        server = StackServer(run_config(scratch, backend.base_url), scratch)
        with running(backend), running(server.start()):
            warm_up(server.url)
            base_rss, _ = settled_rss(server, args.settle)
            base = (base_rss, server.open_fds())
            rounds = [one_round(server, backend, args, scratch) for _ in range(args.rounds)]
            verdict = report(rounds, args, base)
            verdict.check("the server still answers", httpx.get(f"{server.url}/alpha/health").is_success)
            tracebacks = server.tracebacks()
            verdict.check("the server logged no traceback", not tracebacks, f"{len(tracebacks)} logged")
    return verdict.report("load")


if __name__ == "__main__":
    raise SystemExit(main())
