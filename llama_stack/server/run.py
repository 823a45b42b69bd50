"""Run a stack server: build the stack first (so a bad config fails before a port is bound),
then serve it with uvicorn on the same event loop."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from llama_stack.distribution.resolver import Stack, build_stack
from llama_stack.distribution.spec import ConfigError, RunConfig
from llama_stack.server.app import create_app

log = logging.getLogger("llama_stack.server")

# Set to 1 to start every provider before the port is bound, as before background starts: the
# server then answers only once all models are loaded (and benchmarks measure the difference).
EAGER_START_ENV = "LLAMA_STACK_EAGER_START"


def background_start() -> bool:
    return os.environ.get(EAGER_START_ENV, "").strip().lower() not in {"1", "true", "yes"}


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


class StackServer(GracefulServer):
    """Starts the stack's providers in the background once the port is bound: until then the
    heavy imports of their start would only slow the server's own start down."""

    def __init__(self, config: uvicorn.Config, stack: Stack) -> None:
        super().__init__(config)
        self.stack = stack

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.stack.start_background()


def run_loop(main: Coroutine[Any, Any, None]) -> None:
    """Runs the server on uvloop (uvicorn[standard] brings it on Linux and macOS): the request path
    costs markedly less CPU on it than on asyncio's own loop; elsewhere asyncio's loop serves."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    uvloop.run(main)


async def serve(
    config: RunConfig, host: str | None = None, port: int | None = None, sock: socket.socket | None = None
) -> None:
    started = time.perf_counter()
    # In the background, providers load their models while the server already answers (requests
    # for them wait); a bad config still fails here, before the port is bound.
    stack = await build_stack(config, background=background_start(), launch=False)
    app = create_app(stack)
    server_config = uvicorn.Config(
        app,
        host=host or config.server.host,
        port=config.server.port if port is None else port,
        log_level="info",
        access_log=False,
        timeout_graceful_shutdown=int(config.server.graceful_shutdown_s),
        timeout_keep_alive=int(config.server.keep_alive_s),
        lifespan="on",
    )
    server = StackServer(server_config, stack)
    log.info("stack '%s' built in %.2fs", config.image_name, time.perf_counter() - started)
    await server.serve(sockets=[sock] if sock is not None else None)


def run_server(config: RunConfig, host: str | None = None, port: int | None = None, workers: int = 1) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if workers <= 1:
        run_loop(serve(config, host, port))
        return
    sys.exit(run_workers(config, host or config.server.host, config.server.port if port is None else port, workers))


def run_workers(config: RunConfig, host: str, port: int, workers: int) -> int:
    """N worker processes, each with its own stack, accepting on one socket bound here first (so a
    busy port fails before any worker starts). Workers share state only through the stores the
    run config names: give them Postgres or Redis, not files, to share registrations and sessions.
    SIGTERM/SIGINT are passed on; if a worker dies, the others are stopped and the exit status
    says so, for the process supervisor to act on."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    context = multiprocessing.get_context("fork")  # the parent has no loop or threads yet
    children = [context.Process(target=_worker, args=(config, sock), daemon=False) for _ in range(workers)]
    for child in children:
        child.start()
    log.info("started %d workers on %s:%d", workers, host, port)

    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child.is_alive() and child.pid is not None:
                os.kill(child.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    status = 0
    remaining = list(children)
    while remaining:
        for child in list(remaining):
            child.join(timeout=0.2)
            if child.exitcode is None:
                continue
            remaining.remove(child)
            # A worker still building its stack when told to stop dies by the signal: that is a stop.
            stopped_by_us = stopping and child.exitcode == -signal.SIGTERM
            if child.exitcode != 0 and not stopped_by_us and status == 0:
                status = 1
                log.error("worker %s exited with status %s; stopping the others", child.pid, child.exitcode)
                stop(signal.SIGTERM, None)
    sock.close()
    return status


def _worker(config: RunConfig, sock: socket.socket) -> None:
    try:
        run_loop(serve(config, sock=sock))
    except ConfigError as e:
        print(f"Error: {e}", file=sys.stderr)
        sys.exit(1)
