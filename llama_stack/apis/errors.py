"""The one error vocabulary of the stack. Providers and routers raise these; the server alone maps
them to status codes (STATUS below) and to each face's error envelope (llama_stack/server/errors.py)."""

from __future__ import annotations


class StackError(Exception):
    """Base of every error a client may see. `message` is safe to show: no secrets, no traceback.
    `retry_after_s`, where set, is how long a client should wait before trying again (the server
    sends it as Retry-After)."""

    retry_after_s: float | None = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequest(StackError):
    """The request is well-formed JSON but asks for something that cannot be done as asked."""


class NotFound(StackError):
    """A named resource does not exist."""


class ModelNotFound(NotFound):
    def __init__(self, model_id: str, available: list[str] | None = None) -> None:
        hint = f" Available models: {', '.join(sorted(available))}." if available else ""
        super().__init__(f"Model '{model_id}' is not registered.{hint}")
        self.model_id = model_id


class ShieldNotFound(NotFound):
    def __init__(self, shield_id: str) -> None:
        super().__init__(f"Shield '{shield_id}' is not registered.")


class MemoryBankNotFound(NotFound):
    def __init__(self, bank_id: str) -> None:
        super().__init__(f"Memory bank '{bank_id}' is not registered.")


class Conflict(StackError):
    """The request clashes with what exists (e.g. an id already taken by another provider)."""


class PayloadTooLarge(StackError):
    pass


class NotImplementedYet(StackError):
    """A route or feature this distribution does not provide; the message names what is missing."""


class StoreUnavailable(StackError):
    """A database the stack keeps its own state in (kvstore, vector store) cannot be reached."""

    # Each request tries the database afresh (pools reconnect on use), so a second is long enough
    # for a restarted database to be found and short enough not to stall a client needlessly.
    retry_after_s = 1.0


class UpstreamError(StackError):
    """A backend the provider calls failed or answered garbage."""


class UpstreamTimeout(StackError):
    pass


class RateLimited(StackError):
    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ProviderError(StackError):
    """A provider failed in a way that is the server's fault (a bug or a broken local resource)."""


class Unauthorized(StackError):
    """The request carries no API key, or one the server does not know."""


class Forbidden(StackError):
    """The caller's API key is valid but does not cover what the request asks for."""


# The statuses the vocabulary maps to, and the name each face's error envelope gives a status.
# server/errors.py answers with them; the SDK reads an error event's type back into its status.
STATUS: dict[type[StackError], int] = {
    InvalidRequest: 400,
    Unauthorized: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    PayloadTooLarge: 413,
    RateLimited: 429,
    ProviderError: 500,
    NotImplementedYet: 501,
    StoreUnavailable: 503,
    UpstreamError: 502,
    UpstreamTimeout: 504,
}

ERROR_TYPE: dict[int, str] = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
    501: "not_implemented",
    502: "upstream_error",
    503: "unavailable",
    504: "upstream_timeout",
}


def status_of(error: StackError) -> int:
    for cls in type(error).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500
