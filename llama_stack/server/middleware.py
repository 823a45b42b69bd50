"""Pure ASGI middleware (no per-request task or body copy, unlike BaseHTTPMiddleware)."""

from __future__ import annotations

import json
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from llama_stack.distribution.request_context import (
    PROVIDER_DATA_HEADER,
    reset_provider_data,
    set_provider_data,
)
from llama_stack.server.errors import error_response

# A JSON \\uD800-\\uDBFF escape not followed by a low one, or a low one not preceded by a high one:
# text no encoding can carry, which a provider's tokenizer would fail on deep inside a request.
LONE_SURROGATE = re.compile(
    rb"(?<!\\)\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F])"
    rb"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})(?<!\\)\\u[dD][c-fC-F][0-9a-fA-F]{2}"
)
ESCAPE = 6  # len(b"\\ud800")
CARRY = 3 * ESCAPE  # bytes kept from the previous chunk: an escape split across chunks, and its neighbours


def lone_surrogate(tail: bytes, body: bytes, last: bool) -> bool:
    """Whether the text `body` adds to a request (after `tail`, the end of what came before)
    holds a lone surrogate escape. An escape at the very end of an unfinished body is judged with
    the next chunk, when what follows it is known."""
    if b"\\u" not in tail + body:
        return False
    window = tail + body
    for match in LONE_SURROGATE.finditer(window):
        seen_before = match.end() <= len(tail) - ESCAPE  # judged with the previous chunk already
        undecided = not last and match.end() > len(window) - ESCAPE
        if not seen_before and not undecided:
            return True
    return False


class RequestBodyGuard:
    """Checks a request body as it arrives: over the size limit (declared or actually sent) is
    413, text with a lone surrogate is 400; both are answered before a handler sees the body."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def too_large(self) -> tuple[int, str]:
        return 413, f"request body is larger than the limit of {self.max_bytes} bytes"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await self._reject(scope, receive, send, *self.too_large())
                return
        received = 0
        tail = b""
        rejected = False

        async def checked_receive() -> Message:
            # Frameworks turn exceptions raised while reading a body into their own 400, so a bad
            # body is answered here and the app is told the client left.
            nonlocal received, tail, rejected
            if rejected:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] != "http.request":
                return message
            body = message.get("body", b"")
            received += len(body)
            problem = None
            if received > self.max_bytes:
                problem = self.too_large()
            elif lone_surrogate(tail, body, last=not message.get("more_body", False)):
                problem = (400, "request body holds text with a lone UTF-16 surrogate escape (e.g. \\ud800)")
            tail = (tail + body)[-CARRY:]
            if problem is not None:
                rejected = True
                await self._reject(scope, receive, send, *problem)
                return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if not rejected:
                await send(message)

        await self.app(scope, checked_receive, guarded_send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send, status: int, message: str) -> None:
        await error_response(status, message, scope["path"])(scope, receive, send)


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
