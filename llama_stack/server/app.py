"""create_app(RunConfig) -> FastAPI. The lifespan starts the stack's providers and stops them."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.telemetry import TelemetryConfig
from starlette.routing import BaseRoute

from llama_stack.apis.inspect import RouteInfo
from llama_stack.distribution.provider import Api
from llama_stack.distribution.resolver import Stack
from llama_stack.server.auth import ALPHA_APIS
from llama_stack.server.errors import EXCEPTION_HANDLERS
from llama_stack.server.llama_routes import llama_router
from llama_stack.server.middleware import ProviderData, RequestBodyGuard
from llama_stack.server.openai_routes import openai_router
from llama_stack.server.openai_surface import openai_surface
from llama_stack.server.params import json_response

log = logging.getLogger(__name__)


def route_listing(routes: list[BaseRoute], stack: Stack) -> dict[str, list[RouteInfo]]:
    provider_types: dict[Api, list[str]] = {}
    for provider in stack.providers:
        provider_types.setdefault(provider.api, []).append(provider.spec.provider_type)
    # The registries route to the providers of the API whose resources they name.
    owners = {Api.models: Api.inference, Api.shields: Api.safety, Api.memory_banks: Api.memory}
    listing: dict[str, list[RouteInfo]] = {}
    for route in routes:
        if not isinstance(route, APIRoute) or not route.include_in_schema:
            continue
        parts = route.path.split("/")
        api = ALPHA_APIS.get(parts[2], Api.inspect) if len(parts) > 2 else Api.inspect
        types = ["builtin"] if api == Api.inspect else provider_types.get(owners.get(api, api), [])
        for method in sorted(route.methods or ()):
            listing.setdefault(api.value, []).append(RouteInfo(route=route.path, method=method, provider_types=types))
    return listing


# The paths that carry the traffic. Routes are matched one by one in list order, so these go
# first; the rest follow with fixed paths before parameterised ones.
HOT_PATHS = (
    "/v1/chat/completions",
    "/alpha/inference/chat-completion",
    "/v1/responses",
    "/v1/completions",
    "/alpha/inference/completion",
    "/v1/embeddings",
    "/alpha/inference/embeddings",
    "/alpha/agents/turn/create",
    "/alpha/memory/query",
    "/v1/vector_stores/{vector_store_id}/search",
)


def dispatch_order(routes: list[BaseRoute]) -> list[BaseRoute]:
    """`routes` in the order the router should try them; the route a request reaches is the same,
    because a fixed path goes before a parameterised route only where none of those matches it
    (tests/unit/test_server.py checks every route)."""

    def rank(route: BaseRoute) -> tuple[int, int]:
        path = getattr(route, "path", "")
        if path in HOT_PATHS:
            return (0, HOT_PATHS.index(path))
        return (1 if "{" not in path else 2, 0)

    return sorted(routes, key=rank)


def create_app(stack: Stack) -> FastAPI:
    """An app over an already built stack; its lifespan stops the stack when the server stops."""
    ops = stack.operations

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await ops.close()
        await stack.shutdown()

    # FastAPI's own OpenTelemetry hooks stay off: server.telemetry (observability.py) traces and
    # meters requests, and the hooks' per-request provider checks cost ~5% of a request's CPU.
    no_telemetry: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}
    app = FastAPI(title="Llama Stack", version="0.1.0", lifespan=lifespan, telemetry=no_telemetry)
    for exc_class, handler in EXCEPTION_HANDLERS.items():
        app.add_exception_handler(exc_class, handler)
    alpha = llama_router(stack)
    # The faces' routes go straight onto the app: an included router is matched as a nested
    # router on every request, which cost ~0.2 ms per request in FastAPI 0.16x.
    for router in (alpha, openai_router(stack), *openai_surface(stack)):
        app.router.routes.extend(router.routes)
    routes = route_listing(alpha.routes, stack)

    @app.get("/alpha/routes/list")
    async def routes_list() -> object:
        return json_response(routes)

    ops.add_routes(app)
    app.router.routes[:] = dispatch_order(app.router.routes)
    # Starlette runs the middleware added last first: request ids, metrics, traces, access control.
    app.add_middleware(ProviderData)
    app.add_middleware(RequestBodyGuard, max_bytes=stack.config.server.max_request_bytes)
    ops.add_middleware(app)
    app.state.stack = stack
    app.state.operations = ops
    return app
