"""Typed errors: one class per HTTP status the stack answers with, each carrying the server's
error type and message. The server's error body is {"error": {"type": ..., "message": ...}} on the
/alpha face and OpenAI's {"error": {"message", "type", "param", "code"}} on /v1; both parse here.
An error event in the middle of a stream raises the same classes, by the error's type."""

from __future__ import annotations

from typing import Any

import httpx

from llama_stack.apis.errors import ERROR_TYPE


def request_of(response: httpx.Response | None) -> httpx.Request | None:
    """The request a response answers, if it is known (a hand-made Response has none)."""
    try:
        return response.request if response is not None else None
    except RuntimeError:
        return None


class LlamaStackError(Exception):
    """Base of every error this SDK raises."""


class APIError(LlamaStackError):
    def __init__(self, message: str, *, request: httpx.Request | None = None, body: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.request = request
        self.body = body


class APIConnectionError(APIError):
    """The server could not be reached, or the connection broke before an answer came."""

    def __init__(self, message: str = "connection error", *, request: httpx.Request | None = None) -> None:
        super().__init__(message, request=request)


class APITimeoutError(APIConnectionError):
    def __init__(self, message: str = "request timed out", *, request: httpx.Request | None = None) -> None:
        super().__init__(message, request=request)


class APIStatusError(APIError):
    """The server answered with an error: `status_code`, `error_type` (the server's name for the
    error, e.g. "not_found") and `message`. `in_stream` is true for an error event sent mid-stream,
    where `status_code` is the status that error would have had."""

    status_code: int = 0

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        error_type: str | None = None,
        response: httpx.Response | None = None,
        body: Any = None,
        in_stream: bool = False,
    ) -> None:
        super().__init__(message, request=request_of(response), body=body)
        self.status_code = status_code
        self.error_type = error_type
        self.response = response
        self.in_stream = in_stream

    def __str__(self) -> str:
        kind = f" {self.error_type}" if self.error_type else ""
        return f"{self.status_code}{kind}: {self.message}"


class BadRequestError(APIStatusError):
    status_code = 400


class AuthenticationError(APIStatusError):
    status_code = 401


class PermissionDeniedError(APIStatusError):
    status_code = 403


class NotFoundError(APIStatusError):
    status_code = 404


class MethodNotAllowedError(APIStatusError):
    status_code = 405


class ConflictError(APIStatusError):
    status_code = 409


class PayloadTooLargeError(APIStatusError):
    status_code = 413


class UnprocessableEntityError(APIStatusError):
    status_code = 422


class RateLimitError(APIStatusError):
    status_code = 429


class InternalServerError(APIStatusError):
    """Any 5xx."""

    status_code = 500


class NotImplementedByServerError(InternalServerError):
    """501: the server (or its distribution) does not provide this API or feature."""

    status_code = 501


class ServiceUnavailableError(InternalServerError):
    """503: a store the server keeps its state in (or its quota store) cannot be reached; retry later."""

    status_code = 503


ERROR_CLASSES: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    405: MethodNotAllowedError,
    409: ConflictError,
    413: PayloadTooLargeError,
    422: UnprocessableEntityError,
    429: RateLimitError,
    501: NotImplementedByServerError,
    503: ServiceUnavailableError,
}

# The server's error types (its vocabulary, llama_stack/apis/errors.py) and the status each stands
# for: a mid-stream error event carries only its type. OpenAI's own name for a 400 is read too.
STATUS_OF_TYPE: dict[str, int] = {kind: status for status, kind in ERROR_TYPE.items()} | {"invalid_request_error": 400}


def error_class(status: int) -> type[APIStatusError]:
    if status in ERROR_CLASSES:
        return ERROR_CLASSES[status]
    return InternalServerError if status >= 500 else APIStatusError


def _error_fields(body: Any) -> tuple[str | None, str | None]:
    """(type, message) from either face's envelope, or from FastAPI's {"detail": ...}."""
    if not isinstance(body, dict):
        return None, None
    error = body.get("error")
    if isinstance(error, dict):
        message = error.get("message")
        kind = error.get("type")
        return (kind if isinstance(kind, str) else None), (message if isinstance(message, str) else None)
    if isinstance(error, str):
        return None, error
    detail = body.get("detail")
    return None, (detail if isinstance(detail, str) else None)


def error_from_response(response: httpx.Response) -> APIStatusError:
    """The typed error for an error response whose body has been read."""
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text or None
    kind, message = _error_fields(body)
    if message is None:
        message = body if isinstance(body, str) and body else response.reason_phrase or "error"
    status = response.status_code
    return error_class(status)(message, status_code=status, error_type=kind, response=response, body=body)


def error_from_event(event: dict[str, Any], response: httpx.Response | None = None) -> APIStatusError:
    """The typed error for a stream's `{"error": {...}}` event."""
    kind, message = _error_fields(event)
    status = STATUS_OF_TYPE.get(kind or "", 500)
    return error_class(status)(
        message or "the stream failed",
        status_code=status,
        error_type=kind,
        response=response,
        body=event,
        in_stream=True,
    )
