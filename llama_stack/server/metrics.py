"""Prometheus metrics (server.telemetry.metrics: true), served on GET /metrics.

Each app has its own registry, so nothing is global and two apps in one process never mix their
counts. HTTP metrics are labelled by the route template (`/v1/chat/completions`, never the raw
path, so the label set stays bounded); requests answered before routing (401, 429, unknown paths)
carry the route label "<unrouted>". Inference metrics are labelled by provider and model, the
model being the name the provider serves (its `provider_resource_id`).
"""

from __future__ import annotations

import importlib.util
import time

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from llama_stack.distribution.spec import ConfigError

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
UNROUTED = "<unrouted>"
TELEMETRY_EXTRA = "pip install 'llamastack-lite[telemetry]'"


def require(module: str, setting: str) -> None:
    if importlib.util.find_spec(module) is None:
        missing = f"needs the Python package '{module}', which is not installed"
        raise ConfigError(f"{setting} {missing}; run: {TELEMETRY_EXTRA}")


class Metrics:
    def __init__(self) -> None:
        require("prometheus_client", "server.telemetry.metrics")
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self.requests = Counter(
            "llama_stack_http_requests", "HTTP requests answered", ["method", "route", "status"], registry=registry
        )
        self.latency = Histogram(
            "llama_stack_http_request_duration_seconds",
            "Time from a request's arrival to the end of its answer (the whole stream for SSE)",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        inference = ["provider", "provider_type", "model", "operation"]
        self.inference_requests = Counter(
            "llama_stack_inference_requests", "Calls to inference providers", inference, registry=registry
        )
        self.inference_errors = Counter(
            "llama_stack_inference_errors",
            "Inference calls that failed, by error type",
            [*inference, "error"],
            registry=registry,
        )
        self.inference_latency = Histogram(
            "llama_stack_inference_duration_seconds",
            "Duration of inference calls (to the last chunk for streams)",
            inference,
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.first_token = Histogram(
            "llama_stack_time_to_first_token_seconds",
            "Time to a stream's first chunk",
            inference,
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.tokens = Counter(
            "llama_stack_tokens",
            "Tokens reported by providers: type is input (prompt) or output (completion)",
            ["provider", "provider_type", "model", "type"],
            registry=registry,
        )
        self.quota_rejections = Counter(
            "llama_stack_quota_rejections", "Requests refused with 429 by a quota", ["key", "limit"], registry=registry
        )

    async def endpoint(self, request: Request) -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


class StatusRecorder:
    """An ASGI `send` that remembers the response's status: 500 until the app starts a response."""

    def __init__(self, send: Send) -> None:
        self.send = send
        self.status = 500

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        await self.send(message)


class HttpMetrics:
    """Counts every answer by route and status and times it; pure ASGI, outside access control."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        recorder = StatusRecorder(send)
        try:
            await self.app(scope, receive, recorder)
        finally:
            route = getattr(scope.get("route"), "path", UNROUTED)
            method = scope["method"]
            self.metrics.requests.labels(method, route, str(recorder.status)).inc()
            self.metrics.latency.labels(method, route).observe(time.perf_counter() - started)
