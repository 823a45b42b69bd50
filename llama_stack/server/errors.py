"""One table from the error vocabulary to status codes, and each face's error envelope.

/alpha face: {"error": {"type": ..., "message": ...}} (the same object a stream sends mid-way).
/v1 face:    OpenAI's {"error": {"message", "type", "param", "code"}}.
The status of each error and the name of each status are the vocabulary's (apis/errors.py).
"""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

from llama_stack.apis.errors import ERROR_TYPE, StackError, Unauthorized, status_of

log = logging.getLogger(__name__)

# Statuses a retry may cure; for the rest the official client is told not to repeat the call.
RETRYABLE = {408, 409, 429, 500, 502, 503, 504}


def error_body(status: int, message: str, path: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    kind = ERROR_TYPE.get(status, "error")
    if path.startswith("/v1/"):
        return {"error": {"message": message, "type": kind, "param": None, "code": status, **(extra or {})}}
    return {"error": {"type": kind, "message": message, **(extra or {})}}


def error_response(status: int, message: str, path: str, extra: dict[str, Any] | None = None) -> Response:
    headers = {"x-should-retry": "true" if status in RETRYABLE else "false"}
    return JSONResponse(error_body(status, message, path, extra), status_code=status, headers=headers)


def stream_error_event(error: BaseException, path: str = "/alpha/") -> dict[str, Any]:
    """The error event a stream ends with on the face of `path`: the same envelope as its answers."""
    if isinstance(error, StackError):
        return error_body(status_of(error), error.message, path)
    return error_body(500, "internal server error", path)


async def handle_stack_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StackError)
    status = status_of(exc)
    response = error_response(status, exc.message, request.url.path)
    if exc.retry_after_s is not None:
        response.headers["retry-after"] = retry_after_header(exc.retry_after_s)
    if isinstance(exc, Unauthorized):
        response.headers["www-authenticate"] = "Bearer"
    return response


def retry_after_header(seconds: float) -> str:
    """Whole seconds, rounded up: a client that waits exactly this long is not refused again."""
    return str(max(1, math.ceil(seconds)))


def _field(location: tuple[Any, ...]) -> str:
    parts = [str(p) for p in location if p not in ("body", "query")]
    return ".".join(parts) or "body"


async def handle_validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problems = exc.errors()
    if any(p.get("type") == "json_invalid" for p in problems):
        return error_response(400, "request body is not valid JSON", request.url.path)
    details = [{"field": _field(tuple(p["loc"])), "message": p["msg"]} for p in problems[:20]]
    summary = "; ".join(f"{d['field']}: {d['message']}" for d in details[:3])
    if request.url.path.startswith("/v1/"):  # OpenAI answers schema violations with 400 and the param
        return error_response(400, f"invalid request: {summary}", request.url.path, {"param": details[0]["field"]})
    return error_response(422, f"invalid request: {summary}", request.url.path, {"details": details})


async def handle_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    message = exc.detail if isinstance(exc.detail, str) else ERROR_TYPE.get(exc.status_code, "error")
    if exc.status_code == 404:
        message = f"no route {request.method} {request.url.path}"
    return error_response(exc.status_code, message, request.url.path)


async def handle_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, "internal server error", request.url.path)


EXCEPTION_HANDLERS = {
    StackError: handle_stack_error,
    RequestValidationError: handle_validation_error,
    StarletteHTTPException: handle_http_error,
    Exception: handle_unexpected,
}
