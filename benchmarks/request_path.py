"""Which project files a request passes through: the figure docs/architecture.md gives per path.

Builds remote::vllm in front of the fake OpenAI backend in this process, sends each request once
to warm up, then again under a profile hook, and lists every project file that had a Python frame
during the request (middleware included; tests, benchmarks and site-packages excluded).

    python -m benchmarks.request_path
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path
from types import FrameType
from typing import Any

import httpx

from benchmarks.harness import MODEL, fake_backend, remote_vllm_config
from llama_stack.distribution.resolver import build_stack
from llama_stack.distribution.spec import parse_run_config
from llama_stack.server.app import create_app

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tuple(str(ROOT / part) for part in ("llama_stack", "providers"))

MESSAGES = [{"role": "user", "content": "Say hello."}]
CASES: list[tuple[str, str, dict[str, Any]]] = [
    ("/alpha chat completion", "/alpha/inference/chat-completion", {"model_id": MODEL, "messages": MESSAGES}),
    ("/alpha streamed", "/alpha/inference/chat-completion", {"model_id": MODEL, "messages": MESSAGES, "stream": True}),
    ("/v1 chat completion", "/v1/chat/completions", {"model": MODEL, "messages": MESSAGES}),
    ("/v1 streamed", "/v1/chat/completions", {"model": MODEL, "messages": MESSAGES, "stream": True}),
]


async def files_on_the_path(http: httpx.AsyncClient, path: str, body: dict[str, Any]) -> list[str]:
    (await http.post(path, json=body)).raise_for_status()  # warm: caches, pooled connections
    seen: set[str] = set()

    def hook(frame: FrameType, event: str, _arg: object) -> None:
        if event == "call" and frame.f_code.co_filename.startswith(PROJECT):
            seen.add(frame.f_code.co_filename)

    sys.setprofile(hook)
    try:
        (await http.post(path, json=body)).raise_for_status()
    finally:
        sys.setprofile(None)
    return sorted(str(Path(name).relative_to(ROOT)) for name in seen)


async def report(backend_url: str, state: Path) -> None:
    stack = await build_stack(parse_run_config(remote_vllm_config(backend_url, state), env={}))
    transport = httpx.ASGITransport(app=create_app(stack))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://stack") as http:
            for name, path, body in CASES:
                files = await files_on_the_path(http, path, body)
                print(f"{name}: {len(files)} project files")
                for file in files:
                    print(f"    {file}")
    finally:
        await stack.shutdown()


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="request-path-") as state, fake_backend() as backend:
        asyncio.run(report(backend.url, Path(state)))


if __name__ == "__main__":
    main()
