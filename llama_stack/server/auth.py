"""Access control: API keys (bearer tokens) with scopes, and the quotas of each key.

One pure ASGI middleware does it all before any route runs: it finds the key (401 when missing or
unknown), checks that the key covers the API of the path (403), counts the request against the
key's quotas (429 with Retry-After), then exposes the caller to the rest of the request through
`llama_stack.distribution.request_context` (`current_caller`, `require_model`).

Keys are kept only as SHA-256 digests and compared in constant time against every configured
digest; neither a key nor its digest is ever logged or put in an answer. The model a request names
is checked where it is parsed: the faces' inference and agents routers are wrapped (only when some
key is limited to some models) to call `require_model` before routing (distribution/wrappers.py).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

from llama_stack.distribution.provider import Api
from llama_stack.distribution.request_context import Caller, reset_caller, set_caller
from llama_stack.distribution.spec import ANONYMOUS, AuthConfig
from llama_stack.server.errors import error_response, retry_after_header
from llama_stack.server.metrics import Metrics
from llama_stack.server.quotas import Quotas

log = logging.getLogger(__name__)

# Reachable without a key: liveness probes and the API's own description.
OPEN_PATHS = frozenset({"/alpha/health", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})

# The API each /alpha path family belongs to (its second path segment).
ALPHA_APIS = {
    "inference": Api.inference,
    "safety": Api.safety,
    "memory": Api.memory,
    "agents": Api.agents,
    "models": Api.models,
    "shields": Api.shields,
    "memory-banks": Api.memory_banks,
    "providers": Api.inspect,
    "routes": Api.inspect,
}
_V1_APIS = {
    "models": Api.models,
    "chat": Api.inference,
    "completions": Api.inference,
    "embeddings": Api.inference,
    # The OpenAI agent/retrieval surface is a view of the core APIs: files feed retrieval,
    # a moderation is a shield call.
    "files": Api.memory,
    "vector_stores": Api.memory,
    "moderations": Api.safety,
    "responses": Api.agents,
    "conversations": Api.agents,
}
# Requests to these APIs may spend tokens (directly, or through agents and shields).
TOKEN_APIS = frozenset({Api.inference, Api.agents, Api.safety, Api.memory})


def api_of(path: str) -> Api | None:
    """The API a path belongs to; None for paths of no API (any valid key may call them)."""
    parts = path.split("/", 3)
    if len(parts) < 3:
        return Api.inspect if path == "/metrics" else None
    if parts[1] == "alpha":
        return ALPHA_APIS.get(parts[2])
    if parts[1] == "v1":
        return _V1_APIS.get(parts[2])
    return None


def _digest(key: bytes) -> bytes:
    return hashlib.sha256(key).digest()


class KeyRing:
    """The configured keys, as digests, each with its caller (name and scopes)."""

    def __init__(self, config: AuthConfig) -> None:
        self._entries: list[tuple[bytes, Caller]] = []
        for key in config.keys:
            assert key.key is not None, "resolve_api_keys fills key from key_env"
            models = None if "*" in key.scopes.models else frozenset(key.scopes.models)
            caller = Caller(
                name=key.name,
                apis=frozenset(api.value for api in key.scopes.apis),
                models=models,
                admin=key.admin,
            )
            self._entries.append((_digest(key.key.get_secret_value().encode()), caller))

    @property
    def names(self) -> list[str]:
        return [caller.name for _, caller in self._entries]

    @property
    def restricts_models(self) -> bool:
        return any(caller.models is not None for _, caller in self._entries)

    def find(self, token: bytes) -> Caller | None:
        """The caller whose key is `token`; every digest is compared, whatever matches."""
        presented = _digest(token)
        found = None
        for digest, caller in self._entries:
            if hmac.compare_digest(digest, presented):
                found = caller
        return found


def bearer_token(scope: Scope) -> bytes | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.partition(b" ")
            token = token.strip()
            return token if scheme.lower() == b"bearer" and token else None
    return None


@dataclass(frozen=True)
class _Rejection:
    status: int
    message: str
    headers: dict[str, str]


class AccessControl:
    """Authenticates (when keys are configured), authorises by API, and enforces quotas."""

    def __init__(self, app: ASGIApp, keys: KeyRing | None, quotas: Quotas | None, metrics: Metrics | None) -> None:
        self.app = app
        self.keys = keys
        self.quotas = quotas
        self.metrics = metrics
        # Without keys there are no tenants: the one anonymous caller sees everything.
        self.anonymous = Caller(name=ANONYMOUS, apis=frozenset(api.value for api in Api), models=None, admin=True)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] in OPEN_PATHS:
            await self._open(scope, receive, send)
            return
        path: str = scope["path"]
        api = api_of(path)
        caller = self.anonymous
        if self.keys is not None:
            token = bearer_token(scope)
            found = self.keys.find(token) if token is not None else None
            if found is None:
                await self._reject(scope, receive, send, self._unauthenticated(token is not None))
                return
            caller = found
            if api is not None and api.value not in caller.apis:
                message = f"API key '{caller.name}' may not call the {api.value} API"
                await self._reject(scope, receive, send, _Rejection(403, message, {}))
                return
        if self.quotas is not None and api not in (None, Api.inspect):
            try:
                refusal = await self.quotas.admit(caller.name, api in TOKEN_APIS)
            except Exception as error:  # the store is down: refuse clearly rather than serve uncounted
                log.error("quota store unavailable: %s: %s", type(error).__name__, error)
                message = "the quota store is unavailable, so requests cannot be counted; retry later"
                await self._reject(scope, receive, send, _Rejection(503, message, {"retry-after": "5"}))
                return
            if refusal is not None:
                if self.metrics is not None:
                    self.metrics.quota_rejections.labels(caller.name, refusal.limit).inc()
                headers = {"retry-after": retry_after_header(refusal.retry_after_s)}
                await self._reject(scope, receive, send, _Rejection(429, refusal.message, headers))
                return
        scope.setdefault("state", {})["api_key_name"] = caller.name
        context = set_caller(caller)
        try:
            await self.app(scope, receive, send)
        finally:
            reset_caller(context)

    async def _open(self, scope: Scope, receive: Receive, send: Send) -> None:
        """An open path answers anyone; a valid key still makes its caller known (the health
        route shows each provider's state, errors included, only to a caller it knows)."""
        caller: Caller | None = self.anonymous
        if self.keys is not None:
            token = bearer_token(scope)
            caller = self.keys.find(token) if token is not None else None
        context = set_caller(caller)
        try:
            await self.app(scope, receive, send)
        finally:
            reset_caller(context)

    @staticmethod
    def _unauthenticated(presented: bool) -> _Rejection:
        if presented:
            message = "invalid API key: the bearer token matches no key of this server"
            return _Rejection(401, message, {"www-authenticate": 'Bearer error="invalid_token"'})
        message = "missing API key: send it in the header 'Authorization: Bearer <key>'"
        return _Rejection(401, message, {"www-authenticate": "Bearer"})

    @staticmethod
    async def _reject(scope: Scope, receive: Receive, send: Send, rejection: _Rejection) -> None:
        response = error_response(rejection.status, rejection.message, scope["path"])
        response.headers.update(rejection.headers)
        await response(scope, receive, send)
