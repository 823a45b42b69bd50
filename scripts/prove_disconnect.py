"""Proof: a client that hangs up mid-stream frees the generation within one second.

For three providers behind a real server (uvicorn on 127.0.0.1, in this process so the providers
can be observed), on both faces and for chat and text completions, a client starts a stream,
reads a few frames while the generation is running, and closes the connection. The release time
is measured from the hang-up to the moment the provider shows the generation gone:
  * scripted (tests/scripted.py, prompt "forever"): its count of active streams drops to 0;
  * remote::vllm in front of the fake OpenAI backend (tests/fakes/openai_server.py, its `slow`
    mode: 2,000 tokens, one per 10 ms): the backend's count of open streams drops to 0, i.e.
    the stack closed its upstream request;
  * inline::transformers with the tiny random Llama (max_tokens 4,000): the engine's active
    sequences drop to 0 and it decodes no further token.

    python -m scripts.prove_disconnect [--repeats 5] [--short] [--tiny-dir DIR]

Exit status 0 when every release took under --limit seconds (default 1.0), 1 otherwise.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from scripts.prove_common import Verdict, scratch_dir, table

FRAMES_BEFORE_HANGUP = 5


@dataclass
class Route:
    face: str
    path: str
    body: Callable[[str, str], dict[str, Any]]  # (model, prompt) -> body


def alpha_chat(model: str, prompt: str) -> dict[str, Any]:
    messages = [{"role": "user", "content": prompt}]
    return {"model_id": model, "messages": messages, "stream": True, "sampling_params": {"max_tokens": 4000}}


def alpha_completion(model: str, prompt: str) -> dict[str, Any]:
    return {"model_id": model, "content": prompt, "stream": True, "sampling_params": {"max_tokens": 4000}}


def v1_chat(model: str, prompt: str) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": prompt}], "stream": True, "max_tokens": 4000}


def v1_completion(model: str, prompt: str) -> dict[str, Any]:
    return {"model": model, "prompt": prompt, "stream": True, "max_tokens": 4000}


ROUTES = [
    Route("/alpha chat", "/alpha/inference/chat-completion", alpha_chat),
    Route("/alpha completion", "/alpha/inference/completion", alpha_completion),
    Route("/v1 chat", "/v1/chat/completions", v1_chat),
    Route("/v1 completion", "/v1/completions", v1_completion),
]


@dataclass
class Target:
    """A provider behind a live server, and how to see its generations."""

    name: str
    base_url: str
    model: str
    prompt: str
    running: Callable[[], int]  # generations in flight now
    progress: Callable[[], int] | None = None  # a counter that grows while anything generates
    routes: tuple[str, ...] = tuple(route.face for route in ROUTES)


@dataclass
class Release:
    seconds: float | None  # None: not released within the wait
    running_before: int
    extra_progress: int  # progress counted in the 0.5 s after the release


def hang_up_once(target: Target, route: Route, wait_s: float) -> Release:
    body = route.body(target.model, target.prompt)
    with httpx.Client(base_url=target.base_url, timeout=30) as http:
        with http.stream("POST", route.path, json=body) as response:
            if response.status_code != 200:
                raise SystemExit(f"{target.name} {route.face}: HTTP {response.status_code}: {response.read()[:300]!r}")
            frames = 0
            running_before = 0
            hung_up = 0.0
            for line in response.iter_lines():
                frames += line.startswith("data:")
                if frames >= FRAMES_BEFORE_HANGUP:
                    running_before = target.running()
                    # Leaving the line iterator early closes the connection: that is the hang-up.
                    hung_up = time.perf_counter()
                    break
    if not hung_up:
        raise SystemExit(f"{target.name} {route.face}: the stream ended after {frames} frames, before the hang-up")
    seconds: float | None = None
    while time.perf_counter() - hung_up < wait_s:
        if target.running() == 0:
            seconds = time.perf_counter() - hung_up
            break
        time.sleep(0.002)
    extra = 0
    if target.progress is not None and seconds is not None:
        before = target.progress()
        time.sleep(0.5)
        extra = target.progress() - before
    return Release(seconds, running_before, extra)


def measure(target: Target, repeats: int, limit_s: float, verdict: Verdict) -> list[list[Any]]:
    rows = []
    for route in ROUTES:
        if route.face not in target.routes:
            continue
        releases = [hang_up_once(target, route, wait_s=limit_s * 5) for _ in range(repeats)]
        times = [r.seconds for r in releases if r.seconds is not None]
        was_running = all(r.running_before >= 1 for r in releases)
        stopped = all(r.extra_progress == 0 for r in releases)
        ok = len(times) == repeats and max(times) < limit_s and was_running and stopped
        verdict.check(
            f"{target.name} {route.face}: freed within {limit_s:g}s",
            ok,
            f"max {max(times) * 1000:.0f} ms" if times else "never freed",
        )
        rows.append(
            [
                target.name,
                route.face,
                repeats,
                f"{statistics.median(times) * 1000:.1f}" if times else "-",
                f"{max(times) * 1000:.1f}" if times else "-",
                "yes" if was_running else "NO",
                sum(r.extra_progress for r in releases),
                "ok" if ok else "FAIL",
            ]
        )
    return rows


# --- the three providers -------------------------------------------------------------------------


def sqlite_store(state: Path) -> dict[str, Any]:
    return {"type": "sqlite", "db_path": str(state / "registry.db")}


@contextmanager
def scripted(state: Path) -> Iterator[Target]:
    from llama_stack.distribution.registry import install_provider
    from tests.live import live_server
    from tests.scripted import SCRIPTED_SPEC

    install_provider(SCRIPTED_SPEC)
    config = {
        "version": 2,
        "image_name": "prove-disconnect-scripted",
        "providers": {
            "inference": [
                {"provider_id": "scripted", "provider_type": "test::scripted", "config": {"token_delay_s": 0.005}}
            ]
        },
        "metadata_store": sqlite_store(state),
        "models": [{"model_id": "echo"}],
    }
    with live_server(config) as live:
        provider = live.stack.models.providers["scripted"]
        yield Target("scripted", live.base_url, "echo", "forever", lambda: int(provider.active_streams))


@contextmanager
def remote(state: Path) -> Iterator[Target]:
    from tests.fakes.openai_server import FakeOpenAIServer
    from tests.live import live_server

    model = "meta-llama/Llama-3.2-3B-Instruct"
    with FakeOpenAIServer() as fake:
        config = {
            "version": 2,
            "image_name": "prove-disconnect-remote",
            "providers": {
                "inference": [
                    {
                        "provider_id": "vllm",
                        "provider_type": "remote::vllm",
                        "config": {"url": fake.base_url, "max_retries": 0},
                    }
                ]
            },
            "metadata_store": sqlite_store(state),
            "models": [{"model_id": model, "provider_id": "vllm", "provider_model_id": model}],
        }
        with live_server(config) as live:
            # The fake's `slow` mode streams chat completions; its text completions end at once.
            yield Target(
                "remote::vllm",
                live.base_url,
                model,
                "tell a long story [[fake:slow]]",
                lambda: int(fake.state.open_streams),
                routes=("/alpha chat", "/v1 chat"),
            )


@contextmanager
def transformers(state: Path, tiny_dir: Path) -> Iterator[Target]:
    from llama_stack.models.tiny import TINY_MODEL_ID
    from tests.live import live_server

    config = {
        "version": 2,
        "image_name": "prove-disconnect-transformers",
        "providers": {
            "inference": [
                {
                    "provider_id": "transformers",
                    "provider_type": "inline::transformers",
                    "config": {"device": "cpu", "tiny_model_dir": str(tiny_dir), "max_seq_len": 8192},
                }
            ]
        },
        "metadata_store": sqlite_store(state),
        "models": [{"model_id": TINY_MODEL_ID, "provider_id": "transformers", "provider_model_id": TINY_MODEL_ID}],
    }
    with live_server(config) as live:
        engine = live.stack.models.providers["transformers"].loaded_model(TINY_MODEL_ID).engine

        def running() -> int:
            stats = engine.stats()
            return int(stats.active + stats.waiting)

        yield Target(
            "inline::transformers (tiny)",
            live.base_url,
            TINY_MODEL_ID,
            "Write a very long essay about the sea.",
            running,
            progress=lambda: int(engine.stats().generated_tokens),
        )


def default_tiny_dir() -> Path:
    import os

    configured = os.environ.get("LLAMA_STACK_TEST_MODELS")
    return Path(configured or "~/.cache/llama-stack-tests/tiny-models").expanduser()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="hang-ups per provider and route")
    parser.add_argument("--limit", type=float, default=1.0, help="seconds a release may take")
    parser.add_argument("--short", action="store_true", help="a quick run for the test tier (2 repeats)")
    parser.add_argument(
        "--tiny-dir",
        type=Path,
        default=None,
        help="where the tiny model is built and cached (default: $LLAMA_STACK_TEST_MODELS or "
        "~/.cache/llama-stack-tests/tiny-models, as the tests cache it)",
    )
    args = parser.parse_args()
    repeats = 2 if args.short else args.repeats
    verdict = Verdict()
    rows: list[list[Any]] = []
    with scratch_dir("prove-disconnect-") as scratch:
        providers: list[Callable[[], AbstractContextManager[Target]]] = [
            lambda: scripted(scratch / "scripted"),
            lambda: remote(scratch / "remote"),
            lambda: transformers(scratch / "tiny", args.tiny_dir or default_tiny_dir()),
        ]
        for provider in providers:
            with provider() as target:
                rows += measure(target, repeats, args.limit, verdict)
    print(f"\nrelease time after a client hangs up mid-stream ({repeats} hang-ups per row; milliseconds)")
    headers = ["provider", "route", "runs", "median ms", "max ms", "was running", "tokens after", ""]
    print(table(headers, rows))
    return verdict.report("disconnect")


if __name__ == "__main__":
    raise SystemExit(main())
