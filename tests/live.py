"""A real stack server on a free port in a background thread, for tests that need real HTTP
(the official clients, disconnects). Tests can reach the built Stack to observe providers."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import uvicorn

from llama_stack.distribution.resolver import Stack, build_stack
from llama_stack.distribution.spec import parse_run_config
from llama_stack.server.app import create_app


@dataclass
class LiveServer:
    base_url: str
    stack: Stack
    loop: asyncio.AbstractEventLoop

    def call(self, coroutine: Any) -> Any:
        """Run a coroutine on the server's loop (to inspect provider state safely)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=30)


@contextmanager
def live_server(config: dict[str, Any]) -> Iterator[LiveServer]:
    ready = threading.Event()
    state: dict[str, Any] = {}

    async def main() -> None:
        try:
            stack = await build_stack(parse_run_config(config, env={}))
            server = uvicorn.Server(
                uvicorn.Config(create_app(stack), host="127.0.0.1", port=0, log_level="warning", lifespan="on")
            )
            state["server"], state["stack"], state["loop"] = server, stack, asyncio.get_running_loop()
            serving = asyncio.create_task(server.serve())
            while not server.started and not serving.done():  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
                await asyncio.sleep(0.01)
            state["port"] = server.servers[0].sockets[0].getsockname()[1]
        except BaseException as error:
            state["error"] = error
            ready.set()
            raise
        ready.set()
        await serving

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    ready.wait(timeout=120)
    if "error" in state:
        raise state["error"]
    try:
        yield LiveServer(f"http://127.0.0.1:{state['port']}", state["stack"], state["loop"])
    finally:
        state["server"].should_exit = True
        thread.join(timeout=30)
