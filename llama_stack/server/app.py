"""create_app(RunConfig) -> FastAPI. The lifespan starts the stack's providers and stops them."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from llama_stack.apis.inspect import RouteInfo
from llama_stack.distribution.provider import Api
from llama_stack.distribution.resolver import Stack, build_stack
from llama_stack.distribution.spec import RunConfig
from llama_stack.server.errors import EXCEPTION_HANDLERS, error_response
from llama_stack.server.llama_routes import llama_router
from llama_stack.server.params import json_response

log = logging.getLogger(__name__)


class BodySizeLimit:
    """Answers 413 before a handler reads a body over the limit (declared or actually sent)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await self._reject(scope, receive, send)
                return
        received = 0
        rejected = False

        async def limited_receive() -> Message:
            # Frameworks turn exceptions raised while reading a body into their own 400, so an
            # oversized chunked body is answered here and the app is told the client left.
            nonlocal received, rejected
            if rejected:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    rejected = True
                    await self._reject(scope, receive, send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if not rejected:
                await send(message)

        await self.app(scope, limited_receive, guarded_send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = f"request body is larger than the limit of {self.max_bytes} bytes"
        await error_response(413, message, scope["path"])(scope, receive, send)


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
    """An app over an already built stack; `create_app_from_config` builds the stack in the lifespan."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await stack.shutdown()

    return _assemble(stack, lifespan)


def _assemble(stack: Stack, lifespan: object) -> FastAPI:
    app = FastAPI(title="Llama Stack", version="0.1.0", lifespan=lifespan)  # type: ignore[arg-type]
    for exc_class, handler in EXCEPTION_HANDLERS.items():
        app.add_exception_handler(exc_class, handler)
    alpha = llama_router(stack)
    app.include_router(alpha)
    routes = route_listing(alpha.routes, stack)

    @app.get("/alpha/routes/list")
    async def routes_list() -> object:
        return json_response(routes)

    app.add_middleware(BodySizeLimit, max_bytes=stack.config.server.max_request_bytes)
    app.state.stack = stack
    return app


async def build_app(config: RunConfig) -> FastAPI:
    stack = await build_stack(config)
    return create_app(stack)
