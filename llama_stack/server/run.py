"""Run a stack server: build the stack first (so a bad config fails before a port is bound),
then serve it with uvicorn on the same event loop."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from llama_stack.distribution.resolver import build_stack
from llama_stack.distribution.spec import RunConfig
from llama_stack.server.app import create_app

log = logging.getLogger("llama_stack.server")


class GracefulServer(uvicorn.Server):
    """uvicorn re-raises SIGTERM/SIGINT after its graceful shutdown, so the process dies by the
    signal; a stack that drained its requests and stopped its providers exits with status 0."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        originals = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in originals.items():
                signal.signal(sig, handler)


async def serve(config: RunConfig, host: str | None = None, port: int | None = None) -> None:
    started = time.perf_counter()
    stack = await build_stack(config)
    app = create_app(stack)
    server_config = uvicorn.Config(
        app,
        host=host or config.server.host,
        port=config.server.port if port is None else port,
        log_level="info",
        access_log=False,
        timeout_graceful_shutdown=int(config.server.graceful_shutdown_s),
        lifespan="on",
    )
    server = GracefulServer(server_config)
    log.info("stack '%s' built in %.2fs", config.image_name, time.perf_counter() - started)
    await server.serve()


def run_server(config: RunConfig, host: str | None = None, port: int | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(config, host, port))
