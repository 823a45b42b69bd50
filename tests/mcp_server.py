"""A real MCP server for tests: FastMCP from the official `mcp` package, served over streamable
HTTP (and SSE) by uvicorn in a background thread. It counts the HTTP requests it gets, so a test
can tell that a refused URL was never contacted, and it records the headers its tools saw."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import uvicorn
from mcp.server.fastmcp import Context, FastMCP
from starlette.types import ASGIApp, Receive, Scope, Send

from tests.servers import free_port


@dataclass
class McpTarget:
    url: str  # streamable HTTP endpoint
    sse_url: str
    hits: list[str] = field(default_factory=list)
    seen_headers: list[dict[str, str]] = field(default_factory=list)


def weather_server(target: McpTarget) -> FastMCP:
    server = FastMCP("weather", stateless_http=True)

    @server.tool()
    def get_forecast(city: str, ctx: Context) -> str:  # type: ignore[type-arg]
        """The weather forecast for a city."""
        request = ctx.request_context.request
        if request is not None:
            target.seen_headers.append(dict(request.headers))
        return {"Oslo": "Snow in Oslo", "Cairo": "Sun in Cairo"}.get(city, f"No forecast for {city}")

    @server.tool()
    def delete_city(city: str) -> str:
        """Removes a city from the forecast service (a tool a caller may want to keep out)."""
        return f"{city} deleted"

    @server.tool()
    def broken(city: str) -> str:
        """Always fails."""
        raise ValueError(f"no data for {city}")

    return server


class _Counter:
    def __init__(self, app: ASGIApp, target: McpTarget) -> None:
        self.app = app
        self.target = target

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.target.hits.append(scope["path"])
        await self.app(scope, receive, send)


@contextmanager
def mcp_server() -> Iterator[McpTarget]:
    port = free_port()
    target = McpTarget(url=f"http://127.0.0.1:{port}/mcp", sse_url=f"http://127.0.0.1:{port}/sse")
    fastmcp = weather_server(target)
    app = fastmcp.streamable_http_app()
    for route in fastmcp.sse_app().routes:  # the same tools over the older SSE transport
        app.router.routes.append(route)
    server = uvicorn.Server(
        uvicorn.Config(_Counter(app, target), host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the MCP test server did not start")
        time.sleep(0.02)
    try:
        yield target
    finally:
        server.should_exit = True
        thread.join(timeout=10)
