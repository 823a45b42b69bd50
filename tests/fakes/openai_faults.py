"""The fake OpenAI server's state: the models it serves, what it has seen, and the faults it is
told to commit (see tests/fakes/openai_server.py for the modes)."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

DEFAULT_MODELS = (
    "meta-llama/Llama-3.2-3B-Instruct",
    "meta-llama/Llama-3.2-11B-Vision-Instruct",
    "nomic-ai/nomic-embed-text-v1.5",
)
FAULT_MODES = ("500", "429", "hang", "die", "garbage", "slow")
SLOW_TOKENS, SLOW_DELAY_S, HANG_LIMIT_S = 2000, 0.01, 60.0


class UpstreamDied(Exception):
    """Raised inside a response to make uvicorn drop the connection mid-body."""


@dataclass
class Fault:
    mode: str
    retry_after: float = 1.0


@dataclass
class FakeState:
    models: tuple[str, ...] = DEFAULT_MODELS
    embedding_dimensions: int = 16
    requests: Counter[str] = field(default_factory=Counter)
    open_streams: int = 0
    bodies: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=32))
    queued: deque[Fault] = field(default_factory=deque)
    api_key: str | None = None  # when set, /v1 requests need `Authorization: Bearer <api_key>`
    authorizations: deque[str | None] = field(default_factory=lambda: deque(maxlen=32))
    ids: Iterator[int] = field(default_factory=itertools.count)

    def fail_next(self, mode: str, times: int = 1, retry_after: float = 1.0) -> None:
        if mode not in FAULT_MODES:
            raise ValueError(f"unknown fault mode {mode!r}; known: {', '.join(FAULT_MODES)}")
        self.queued.extend(Fault(mode, retry_after) for _ in range(times))

    def reset(self) -> None:
        self.requests.clear()
        self.bodies.clear()
        self.queued.clear()
        self.authorizations.clear()

    @property
    def last_body(self) -> dict[str, Any]:
        return self.bodies[-1]


def error_response(status: int, message: str, kind: str, param: str | None = None, code: str | None = None) -> Response:
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return JSONResponse(body, status_code=status)


def fault_for(state: FakeState, body: dict[str, Any]) -> Fault | None:
    if state.queued:
        return state.queued.popleft()
    text = json.dumps(body.get("messages") or body.get("prompt") or "")
    if "[[fake:" not in text:
        return None
    mode = text.split("[[fake:", 1)[1].split("]]", 1)[0]
    return Fault(mode) if mode in FAULT_MODES else None


async def fault_response(fault: Fault, request: Request, stream: bool) -> Response | None:
    if fault.mode == "500":
        return error_response(500, "The fake upstream failed (HTTP 500).", "server_error")
    if fault.mode == "429":
        response = error_response(429, "Rate limit reached for requests.", "requests", code="rate_limit_exceeded")
        response.headers["retry-after"] = f"{fault.retry_after:g}"
        return response
    if fault.mode == "hang":
        # Polls rather than waits on an event: a disconnect is only seen by asking.
        deadline = time.monotonic() + HANG_LIMIT_S
        while time.monotonic() < deadline and not await request.is_disconnected():  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        return Response(status_code=504)
    if fault.mode == "garbage" and not stream:
        return Response(b"<html>502 Bad Gateway</html>", media_type="application/json")
    if fault.mode == "die" and not stream:
        return Response(b'{"id": "truncat', headers={"content-length": "400"}, media_type="application/json")
    return None  # die / garbage / slow on a stream: the stream itself misbehaves
