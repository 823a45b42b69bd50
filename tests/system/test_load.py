"""Hundreds of concurrent streaming requests without one error, and the server's memory, file
descriptors and connections back where they were afterwards.

The fake OpenAI backend and a stack server whose inference provider is remote::vllm pointed at
it, each in its own process. Per round, CLIENTS clients each send streaming chat completions one
after the other (alternating /v1 with include_usage and /alpha) for a few seconds from httpx,
every frame checked, then as long again from wrk (when installed) with a Lua script checking
each body's end. The server's RSS and FDs are sampled during the load, and read again once the
RSS has settled. Throughput and latency under this load are benchmarks/bench_load.py's figures.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.system.processes import FakeBackend, StackServer, open_sockets
from tests.system.wrk import WrkResult, wrk_load

pytestmark = pytest.mark.system

MODEL = "meta-llama/Llama-3.2-3B-Instruct"
CLIENTS = 200
SECONDS = 2.0  # per client kind and round
ROUNDS = 2
POOL_MAX = 256  # remote::vllm's max_connections default
RSS_TOLERANCE_MB = 40  # after the load vs after the warm-up: arenas and buffers sized for the peak
RSS_GROWTH_MB = 5  # after the last round vs after the first: no growth per round
API_KEY = "system-load-key-0123456789"
AUTH = {"authorization": f"Bearer {API_KEY}"}


def run_config(state: Path, backend_url: str) -> dict[str, Any]:
    settings = {"url": backend_url, "max_retries": 0}
    provider = {"provider_id": "vllm", "provider_type": "remote::vllm", "config": settings}
    return {
        "version": 2,
        "image_name": "system-load",
        "providers": {"inference": [provider]},
        "metadata_store": {"type": "sqlite", "db_path": str(state / "registry.db")},
        "models": [{"model_id": MODEL, "provider_id": "vllm", "provider_model_id": MODEL}],
        # The load runs with access control on, as a shared server would: every request's key is
        # checked (and a request without one refused) at no visible cost to the streams.
        "server": {"auth": {"keys": [{"name": "load", "key": API_KEY}]}},
    }


def v1_body(n: int) -> dict[str, Any]:
    messages = [{"role": "user", "content": f"Say hello to visitor {n}."}]
    return {"model": MODEL, "messages": messages, "stream": True, "stream_options": {"include_usage": True}}


def alpha_body(n: int) -> dict[str, Any]:
    return {"model_id": MODEL, "messages": [{"role": "user", "content": f"Say hello to visitor {n}."}], "stream": True}


# --- one streamed request, checked to its end ------------------------------------------------------


def v1_text(frames: list[str]) -> str:
    assert frames and frames[-1] == "[DONE]", "the stream did not end with [DONE]"
    chunks = [json.loads(frame) for frame in frames[:-1]]
    assert not [c for c in chunks if "error" in c], "an error frame"
    assert chunks[-1].get("usage"), "no usage chunk"
    return "".join((c["choices"][0]["delta"].get("content") or "") for c in chunks if c.get("choices"))


def alpha_text(frames: list[str]) -> str:
    events = [json.loads(frame) for frame in frames]
    assert not [e for e in events if "error" in e], "an error frame"
    assert events and events[-1]["event"]["event_type"] == "complete", "the stream did not end with complete"
    return "".join(e["event"]["delta"] for e in events if isinstance(e["event"].get("delta"), str))


@dataclass
class Tally:
    streams: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    first_errors: list[str] = field(default_factory=list)
    empty_answers: int = 0

    def error(self, kind: str, detail: str) -> None:
        self.errors[kind] += 1
        if len(self.first_errors) < 10:
            self.first_errors.append(f"{kind}: {detail}")


async def one_stream(http: httpx.AsyncClient, face: str, n: int, tally: Tally) -> None:
    if face == "v1":
        path, body = "/v1/chat/completions", v1_body(n)
    else:
        path, body = "/alpha/inference/chat-completion", alpha_body(n)
    frames: list[str] = []
    try:
        async with http.stream("POST", path, json=body) as response:
            if response.status_code != 200:
                tally.error(f"HTTP {response.status_code}", (await response.aread())[:200].decode(errors="replace"))
                return
            if not response.headers.get("content-type", "").startswith("text/event-stream"):
                tally.error("content-type", response.headers.get("content-type", ""))
                return
            frames = [line[6:] async for line in response.aiter_lines() if line.startswith("data: ")]
    except httpx.HTTPError as e:
        tally.error(type(e).__name__, f"{face}, {len(frames)} frames read: {e!r} from {e.__cause__ or e.__context__!r}")
        return
    try:
        text = v1_text(frames) if face == "v1" else alpha_text(frames)
    except (AssertionError, ValueError, KeyError, IndexError, TypeError) as e:
        tally.error(f"{face} stream", f"{e!r}: {frames[:3]}")
        return
    tally.streams += 1
    tally.empty_answers += not text


async def load(base_url: str, clients: int, seconds: float) -> Tally:
    tally = Tally()
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    deadline = time.perf_counter() + seconds
    async with httpx.AsyncClient(base_url=base_url, timeout=120, limits=limits, headers=AUTH) as http:

        async def client(index: int) -> None:
            n = 0
            while time.perf_counter() < deadline:
                await one_stream(http, "v1" if (index + n) % 2 == 0 else "alpha", index * 100_000 + n, tally)
                n += 1

        await asyncio.gather(*(client(i) for i in range(clients)))
    return tally


# --- the server's figures --------------------------------------------------------------------------


class PeakSampler:
    """Samples the server's RSS and open FDs in a thread, for the peaks."""

    def __init__(self, server: StackServer) -> None:
        self.server = server
        self.peak_rss = 0.0
        self.peak_fds = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_rss = max(self.peak_rss, self.server.rss_mb())
            self.peak_fds = max(self.peak_fds, self.server.open_fds())
            self._stop.wait(0.2)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def settled_rss(server: StackServer, max_s: float = 8) -> float:
    """The RSS once it stopped moving (under 0.5 MiB over 1 s), or after `max_s`."""
    started, previous = time.perf_counter(), server.rss_mb()
    while time.perf_counter() - started < max_s:
        time.sleep(1)
        now = server.rss_mb()
        if abs(now - previous) < 0.5:
            return now
        previous = now
    return server.rss_mb()


def connections(server: StackServer, backend: FakeBackend) -> tuple[int, int]:
    """The server's TCP connections from clients, and to the backend."""
    import psutil

    tcp = psutil.Process(server.pid).net_connections(kind="tcp")
    from_clients = sum(1 for c in tcp if c.raddr and c.laddr.port == server.port)
    return from_clients, sum(1 for c in tcp if c.raddr and c.raddr.port == backend.port)


@dataclass
class Round:
    httpx: Tally
    wrk: WrkResult | None
    peak_fds: int
    rss_after: float
    non_socket_fds_before: int  # open FDs that are not sockets: files, pipes, event fds
    non_socket_fds_after: int
    client_connections_after: int
    idle_upstream: int
    backend_streams_open: int


def one_round(server: StackServer, backend: FakeBackend, scratch: Path) -> Round:
    non_socket_before = server.open_fds() - open_sockets(server.pid)
    with PeakSampler(server) as sampler:
        tally = asyncio.run(load(server.url, CLIENTS, SECONDS))
        wrk = wrk_load(server.url, CLIENTS, SECONDS, scratch, v1_body(0), alpha_body(0), AUTH["authorization"])
    rss_after = settled_rss(server)
    from_clients, to_backend = connections(server, backend)
    return Round(
        httpx=tally,
        wrk=wrk,
        peak_fds=sampler.peak_fds,
        rss_after=rss_after,
        non_socket_fds_before=non_socket_before,
        non_socket_fds_after=server.open_fds() - open_sockets(server.pid),
        client_connections_after=from_clients,
        idle_upstream=to_backend,
        backend_streams_open=backend.open_streams(),
    )


@dataclass
class Loaded:
    server: StackServer
    rss_after_warm_up: float
    rounds: list[Round]


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    scratch = tmp_path_factory.mktemp("load")
    backend = FakeBackend(scratch).start()
    server = StackServer(run_config(scratch, backend.base_url), scratch)
    try:
        server.start()
        warm = asyncio.run(load(server.url, 4, 1.0))
        assert not warm.errors, f"the warm-up failed: {warm.first_errors}"
        rss_after_warm_up = settled_rss(server)
        yield Loaded(server, rss_after_warm_up, [one_round(server, backend, scratch) for _ in range(ROUNDS)])
    finally:
        server.stop()
        backend.stop()


def test_every_stream_ends_complete_with_its_answer(loaded: Loaded) -> None:
    for r in loaded.rounds:
        assert r.httpx.streams >= CLIENTS and not r.httpx.errors, r.httpx.first_errors
        assert r.httpx.empty_answers == 0
        if r.wrk is not None:
            assert r.wrk.ok > 0 and r.wrk.failed == 0 and not r.wrk.socket_errors, r.wrk


def test_the_clients_were_served_at_once(loaded: Loaded) -> None:
    assert all(r.peak_fds >= CLIENTS for r in loaded.rounds), [r.peak_fds for r in loaded.rounds]


def test_no_stream_or_connection_is_left_open(loaded: Loaded) -> None:
    for r in loaded.rounds:
        assert r.backend_streams_open == 0
        assert r.client_connections_after == 0
        assert r.idle_upstream <= POOL_MAX  # the pool closes idle ones lazily, within its bound


def test_no_file_pipe_or_event_fd_leaks(loaded: Loaded) -> None:
    assert all(r.non_socket_fds_after <= r.non_socket_fds_before for r in loaded.rounds)


def test_memory_is_flat_after_the_load(loaded: Loaded) -> None:
    first, last = loaded.rounds[0].rss_after, loaded.rounds[-1].rss_after
    assert last - loaded.rss_after_warm_up <= RSS_TOLERANCE_MB, (loaded.rss_after_warm_up, first, last)
    assert last - first <= RSS_GROWTH_MB, f"RSS grew from {first:.1f} to {last:.1f} MiB between rounds"


def test_a_stream_without_the_key_is_refused(loaded: Loaded) -> None:
    refused = httpx.post(f"{loaded.server.url}/v1/chat/completions", json=v1_body(1), timeout=30)
    assert refused.status_code == 401 and refused.json()["error"]["type"] == "unauthorized"


def test_the_server_still_answers_and_logged_no_traceback(loaded: Loaded) -> None:
    assert httpx.get(f"{loaded.server.url}/alpha/health", timeout=10).is_success
    assert loaded.server.tracebacks() == []
