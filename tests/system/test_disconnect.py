"""A client that hangs up mid-stream frees the generation: the provider stops generating instead
of running to the end of an answer nobody reads.

For three providers behind a real server (tests/live.py, in this process so that the provider can
be observed), on both faces, a client starts a stream, reads a few frames while the generation
runs, and closes the connection. Then the provider must show the generation gone:
  * scripted (tests/scripted.py, prompt "forever": it never ends by itself): active streams 0;
  * remote::vllm in front of the fake OpenAI backend (its `slow` mode: 2,000 tokens, one per
    10 ms): the backend's open streams 0, i.e. the stack closed its upstream request;
  * inline::transformers with the tiny random Llama (max_tokens 4,000): the engine's active and
    waiting sequences 0, and no token decoded afterwards.
The time a release takes is benchmarks/bench_disconnect.py's figure; here the bound is only
there to tell a release from a generation that runs to its end.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.live import live_server

pytestmark = pytest.mark.system

# Read at import, before the tests' isolated HOME: the tiny model cache is shared across sessions
# (tests/providers/transformers_support.py), so the tiny Llama is built once.
TINY_MODELS = Path(os.environ.get("LLAMA_STACK_TEST_MODELS") or "~/.cache/llama-stack-tests/tiny-models").expanduser()
FRAMES_BEFORE_HANGUP = 5
RELEASE_WAIT_S = 5.0  # each generation left alone would run 20 s or more (or forever)
MAX_TOKENS = 4000

ROUTES: dict[str, tuple[str, Callable[[str, str], dict[str, Any]]]] = {
    "/alpha chat": (
        "/alpha/inference/chat-completion",
        lambda model, prompt: {
            "model_id": model,
            "messages": [{"role": "user", "content": prompt}],
            "stream": True,
            "sampling_params": {"max_tokens": MAX_TOKENS},
        },
    ),
    "/alpha completion": (
        "/alpha/inference/completion",
        lambda model, prompt: {
            "model_id": model,
            "content": prompt,
            "stream": True,
            "sampling_params": {"max_tokens": MAX_TOKENS},
        },
    ),
    "/v1 chat": (
        "/v1/chat/completions",
        lambda model, prompt: {
            "model": model,
            "messages": [{"role": "user", "content": prompt}],
            "stream": True,
            "max_tokens": MAX_TOKENS,
        },
    ),
    "/v1 completion": (
        "/v1/completions",
        lambda model, prompt: {"model": model, "prompt": prompt, "stream": True, "max_tokens": MAX_TOKENS},
    ),
}


@dataclass
class Target:
    """A provider behind a live server, and how to see its generations."""

    base_url: str
    model: str
    prompt: str
    running: Callable[[], int]  # generations in flight now
    progress: Callable[[], int] | None = None  # a counter that grows while anything generates


def sqlite_store(state: Path) -> dict[str, Any]:
    return {"type": "sqlite", "db_path": str(state / "registry.db")}


def live_target(config: dict[str, Any], target: Callable[[Any], Target]) -> Iterator[Target]:
    with live_server(config) as live:
        yield target(live)


@pytest.fixture(scope="module")
def scripted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    provider = {"provider_id": "scripted", "provider_type": "test::scripted", "config": {"token_delay_s": 0.005}}
    config = {
        "version": 2,
        "image_name": "system-disconnect-scripted",
        "providers": {"inference": [provider]},
        "metadata_store": sqlite_store(tmp_path_factory.mktemp("scripted")),
        "models": [{"model_id": "echo"}],
    }

    def target(live: Any) -> Target:
        scripted = live.stack.models.providers["scripted"]
        return Target(live.base_url, "echo", "forever", lambda: int(scripted.active_streams))

    yield from live_target(config, target)


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    from tests.fakes.openai_server import FakeOpenAIServer

    model = "meta-llama/Llama-3.2-3B-Instruct"
    with FakeOpenAIServer() as fake:
        provider = {"provider_id": "vllm", "provider_type": "remote::vllm", "config": {"url": fake.base_url}}
        config = {
            "version": 2,
            "image_name": "system-disconnect-remote",
            "providers": {"inference": [provider]},
            "metadata_store": sqlite_store(tmp_path_factory.mktemp("remote")),
            "models": [{"model_id": model, "provider_id": "vllm", "provider_model_id": model}],
        }
        prompt = "tell a long story [[fake:slow]]"

        def open_streams() -> int:
            return int(fake.state.open_streams)

        yield from live_target(config, lambda live: Target(live.base_url, model, prompt, open_streams))


@pytest.fixture(scope="module")
def transformers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    pytest.importorskip("transformers", reason="pip install -e '.[torch]'")
    from llama_stack.models.tiny import TINY_MODEL_ID

    settings = {"device": "cpu", "tiny_model_dir": str(TINY_MODELS), "max_seq_len": 8192}
    provider = {"provider_id": "transformers", "provider_type": "inline::transformers", "config": settings}
    config = {
        "version": 2,
        "image_name": "system-disconnect-transformers",
        "providers": {"inference": [provider]},
        "metadata_store": sqlite_store(tmp_path_factory.mktemp("transformers")),
        "models": [{"model_id": TINY_MODEL_ID, "provider_id": "transformers", "provider_model_id": TINY_MODEL_ID}],
    }

    def target(live: Any) -> Target:
        engine = live.stack.models.providers["transformers"].loaded_model(TINY_MODEL_ID).engine
        prompt = "Write a very long essay about the sea."
        return Target(
            live.base_url,
            TINY_MODEL_ID,
            prompt,
            running=lambda: int(engine.stats().active + engine.stats().waiting),
            progress=lambda: int(engine.stats().generated_tokens),
        )

    yield from live_target(config, target)


def hang_up(target: Target, route: str) -> None:
    """Start a stream, read a few frames while the generation runs, close the connection; then
    the generation must be gone, and nothing generated after."""
    path, body = ROUTES[route]
    with httpx.Client(base_url=target.base_url, timeout=30) as http:
        with http.stream("POST", path, json=body(target.model, target.prompt)) as response:
            assert response.status_code == 200, response.read()[:300]
            frames, running_at_hang_up = 0, 0
            for line in response.iter_lines():
                frames += line.startswith("data:")
                if frames >= FRAMES_BEFORE_HANGUP:
                    running_at_hang_up = target.running()
                    break  # leaving the iterator early and the block closes the connection: the hang-up
    assert frames >= FRAMES_BEFORE_HANGUP, f"the stream ended after {frames} frames, before the hang-up"
    assert running_at_hang_up >= 1, "the provider showed no generation while the stream was running"
    deadline = time.monotonic() + RELEASE_WAIT_S
    while target.running() > 0 and time.monotonic() < deadline:
        time.sleep(0.002)
    assert target.running() == 0, "the generation went on after the client hung up"
    if target.progress is not None:
        before = target.progress()
        time.sleep(0.5)
        assert target.progress() == before, "tokens were decoded after the release"


@pytest.mark.parametrize("route", list(ROUTES))
def test_hanging_up_stops_the_scripted_generation(scripted: Target, route: str) -> None:
    hang_up(scripted, route)


# The fake's `slow` mode streams chat completions; its text completions end at once.
@pytest.mark.parametrize("route", ["/alpha chat", "/v1 chat"])
def test_hanging_up_closes_the_upstream_request(remote: Target, route: str) -> None:
    hang_up(remote, route)


@pytest.mark.parametrize("route", list(ROUTES))
def test_hanging_up_stops_the_tiny_llama_decoding(transformers: Target, route: str) -> None:
    hang_up(transformers, route)
