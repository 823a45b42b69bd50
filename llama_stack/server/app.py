"""create_app(RunConfig) -> FastAPI. The lifespan starts the stack's providers and stops them."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from llama_stack.apis.inspect import RouteInfo
from llama_stack.distribution.provider import Api
from llama_stack.distribution.resolver import Stack
from llama_stack.server.errors import EXCEPTION_HANDLERS
from llama_stack.server.llama_routes import llama_router
from llama_stack.server.middleware import ProviderData, RequestBodyGuard
from llama_stack.server.openai_routes import openai_router
from llama_stack.server.openai_surface import openai_surface
from llama_stack.server.params import json_response

log = logging.getLogger(__name__)


API_OF_PREFIX = {
    "inference": Api.inference,
    "safety": Api.safety,
    "memory": Api.memory,
    "agents": Api.agents,
    "models": Api.models,
    "shields": Api.shields,
    "memory-banks": Api.memory_banks,
}


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
        api = API_OF_PREFIX.get(parts[2]) if len(parts) > 2 else None
        name = api.value if api else "inspect"
        types = provider_types.get(owners.get(api, api), []) if api else ["builtin"]
        for method in sorted(route.methods or ()):
            listing.setdefault(name, []).append(RouteInfo(route=route.path, method=method, provider_types=types))
    return listing


def create_app(stack: Stack) -> FastAPI:
    """An app over an already built stack; its lifespan stops the stack when the server stops."""
    ops = stack.operations

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await ops.close()
        await stack.shutdown()

    app = FastAPI(title="Llama Stack", version="0.1.0", lifespan=lifespan)
    for exc_class, handler in EXCEPTION_HANDLERS.items():
        app.add_exception_handler(exc_class, handler)
    alpha = llama_router(stack)
    app.include_router(alpha)
    app.include_router(openai_router(stack))
    for router in openai_surface(stack):
        app.include_router(router)
    routes = route_listing(alpha.routes, stack)

    @app.get("/alpha/routes/list")
    async def routes_list() -> object:
        return json_response(routes)

    ops.add_routes(app)
    # Starlette runs the middleware added last first: request ids, metrics, traces, access control.
    app.add_middleware(ProviderData)
    app.add_middleware(RequestBodyGuard, max_bytes=stack.config.server.max_request_bytes)
    ops.add_middleware(app)
    app.state.stack = stack
    app.state.operations = ops
    return app
