"""Per-request data that providers may read without seeing HTTP: the provider data a client
sends in the `X-LlamaStack-ProviderData` header (e.g. {"together_api_key": "..."}).

The server sets it for the duration of each request; a provider calls `provider_data()`.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from llama_stack.apis.errors import Forbidden

PROVIDER_DATA_HEADER = "x-llamastack-providerdata"

_provider_data: ContextVar[dict[str, Any] | None] = ContextVar("provider_data", default=None)


def provider_data() -> dict[str, Any]:
    """The current request's provider data; empty outside a request or when none was sent."""
    return _provider_data.get() or {}


def provider_value(key: str) -> str | None:
    value = provider_data().get(key)
    return value if isinstance(value, str) and value else None


def set_provider_data(data: dict[str, Any] | None) -> object:
    return _provider_data.set(data)


def reset_provider_data(token: object) -> None:
    _provider_data.reset(token)  # type: ignore[arg-type]


# The caller: who the request's API key belongs to and what it may use. The server's access
# control sets it once per request; routers and the face call `require_model` where a model id is
# known, so the body is parsed once.


@dataclass(frozen=True)
class Caller:
    name: str
    apis: frozenset[str]
    models: frozenset[str] | None  # None: every model
    # An admin key sees every tenant's resources (see distribution/ownership.py).
    admin: bool = False

    def may_use_model(self, model_id: str) -> bool:
        return self.models is None or model_id in self.models


_caller: ContextVar[Caller | None] = ContextVar("caller", default=None)


def current_caller() -> Caller | None:
    """The current request's caller; None outside a request or when no access control is on."""
    return _caller.get()


def set_caller(caller: Caller | None) -> object:
    return _caller.set(caller)


def reset_caller(token: object) -> None:
    _caller.reset(token)  # type: ignore[arg-type]


def require_model(model_id: str) -> None:
    """Raise Forbidden when the caller's key does not cover `model_id`."""
    caller = _caller.get()
    if caller is not None and not caller.may_use_model(model_id):
        allowed = ", ".join(sorted(caller.models or ()))
        raise Forbidden(f"API key '{caller.name}' may not use model '{model_id}' (it may use: {allowed})")


# The request id (when the server's telemetry.request_ids is on), for logs and upstream headers.
_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


def current_request_id() -> str | None:
    return _request_id.get()


def set_request_id(request_id: str | None) -> object:
    return _request_id.set(request_id)


def reset_request_id(token: object) -> None:
    _request_id.reset(token)  # type: ignore[arg-type]
