"""Pure ASGI middleware (no per-request task or body copy, unlike BaseHTTPMiddleware)."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from llama_stack.distribution.request_context import (
    PROVIDER_DATA_HEADER,
    reset_provider_data,
    set_provider_data,
)
from llama_stack.server.errors import error_response


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


class ProviderData:
    """Exposes the X-LlamaStack-ProviderData header (a JSON object) to providers for one request."""

    header = PROVIDER_DATA_HEADER.encode()

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = None
        if scope["type"] == "http":
            raw = next((value for name, value in scope["headers"] if name == self.header), None)
        if raw is None:
            await self.app(scope, receive, send)
            return
        try:
            data = json.loads(raw)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            message = "the X-LlamaStack-ProviderData header must be a JSON object"
            await error_response(400, message, scope["path"])(scope, receive, send)
            return
        token = set_provider_data(data)
        try:
            await self.app(scope, receive, send)
        finally:
            reset_provider_data(token)
