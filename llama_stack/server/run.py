"""Run a stack server: build the stack first (so a bad config fails before a port is bound),
then serve it with uvicorn on the same event loop."""

from __future__ import annotations

import asyncio
import logging
import time

import uvicorn

from llama_stack.distribution.resolver import build_stack
from llama_stack.distribution.spec import RunConfig
from llama_stack.server.app import create_app

log = logging.getLogger("llama_stack.server")


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
    server = uvicorn.Server(server_config)
    log.info("stack '%s' built in %.2fs", config.image_name, time.perf_counter() - started)
    await server.serve()


def run_server(config: RunConfig, host: str | None = None, port: int | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(config, host, port))
