"""Per-request data that providers may read without seeing HTTP: the provider data a client
sends in the `X-LlamaStack-ProviderData` header (e.g. {"together_api_key": "..."}).

The server sets it for the duration of each request; a provider calls `provider_data()`.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

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
