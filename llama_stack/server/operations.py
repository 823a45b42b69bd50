"""Access control, quotas and telemetry of one stack, built from server.auth, server.quotas and
server.telemetry when the stack is built. They enter the call chain as wrappers that satisfy the
Protocol of what they wrap (resolver.build_stack applies them in its declared order), and the app
as middleware and routes (app.create_app). Whatever is off adds no wrapper and no middleware."""

from __future__ import annotations

import logging

from fastapi import FastAPI

from llama_stack.apis.agents import Agents
from llama_stack.apis.inference import Inference
from llama_stack.distribution.spec import ServerConfig
from llama_stack.distribution.store.api import KVStore
from llama_stack.distribution.wrappers import Meter, MeteredInference, ScopedAgents, ScopedInference
from llama_stack.server.auth import AccessControl, KeyRing
from llama_stack.server.metrics import HttpMetrics, Metrics
from llama_stack.server.observability import RequestIds, use_json_logs
from llama_stack.server.quotas import Quotas
from llama_stack.server.tracing import TraceRequests, Tracing

log = logging.getLogger(__name__)


class Operations:
    def __init__(self, server: ServerConfig, store: KVStore) -> None:
        self.telemetry = server.telemetry
        self.keys = KeyRing(server.auth) if server.auth and server.auth.keys else None
        self.quotas = Quotas(server.quotas, store) if server.quotas else None
        self.metrics = Metrics() if self.telemetry.metrics else None
        self.tracing = Tracing(self.telemetry.tracing) if self.telemetry.tracing else None
        self.meter = Meter(self.metrics, self.tracing, self.quotas)
        self._closed = False

    # The call chain's wrappers ------------------------------------------------------------------

    def metered(self, provider_id: str, provider_type: str, provider: Inference) -> Inference:
        """An inference provider as every router calls it: measured once per call, whoever calls."""
        return MeteredInference(provider, provider_id, provider_type, self.meter) if self.meter.active else provider

    @property
    def scopes_models(self) -> bool:
        return self.keys is not None and self.keys.restricts_models

    def scoped_inference(self, router: Inference) -> Inference:
        """The inference router as the faces call it."""
        return ScopedInference(router) if self.scopes_models else router

    def scoped_agents(self, router: Agents) -> Agents:
        """The agents router as the faces call it."""
        return ScopedAgents(router) if self.scopes_models else router

    # The app's side -----------------------------------------------------------------------------

    def add_routes(self, app: FastAPI) -> None:
        if self.metrics is not None:
            app.add_route("/metrics", self.metrics.endpoint, methods=["GET"], include_in_schema=False)

    def add_middleware(self, app: FastAPI) -> None:
        if self.keys is not None or self.quotas is not None:
            app.add_middleware(AccessControl, keys=self.keys, quotas=self.quotas, metrics=self.metrics)
        if self.tracing is not None:
            app.add_middleware(TraceRequests, tracing=self.tracing)
        if self.metrics is not None:
            app.add_middleware(HttpMetrics, metrics=self.metrics)
        if self.telemetry.request_ids:
            app.add_middleware(RequestIds)
        if self.telemetry.log_format == "json":
            use_json_logs()
        if self.keys is not None:
            log.info("access control on; API keys: %s", ", ".join(self.keys.names))

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.quotas is not None:
            await self.quotas.close()
        if self.tracing is not None:
            self.tracing.shutdown()
