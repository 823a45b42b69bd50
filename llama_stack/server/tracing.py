"""OpenTelemetry traces (server.telemetry.tracing): a SERVER span per HTTP request, continuing the
caller's trace when it sends a W3C `traceparent`, and a CLIENT span per inference call that follows
the GenAI semantic conventions (distribution/wrappers.py MeteredInference makes those).

The app owns its TracerProvider (the global one is left alone), exporting in batches to an OTLP/HTTP
collector or to the console; `provider.add_span_processor` adds more (tests use an in-memory
exporter that way). The provider is flushed and shut down with the app.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp, Receive, Scope, Send

from llama_stack.distribution.spec import TracingConfig
from llama_stack.server.metrics import StatusRecorder, require

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Tracer

_PROPAGATED = (b"traceparent", b"tracestate")


class Tracing:
    def __init__(self, config: TracingConfig) -> None:
        require("opentelemetry.sdk", "server.telemetry.tracing")
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

        self.provider: TracerProvider = TracerProvider(
            resource=Resource.create({"service.name": config.service_name}), shutdown_on_exit=False
        )
        exporter: SpanExporter
        if config.exporter == "console":
            exporter = ConsoleSpanExporter(out=sys.stdout)  # today's stdout, not the one at import
        else:
            require("opentelemetry.exporter.otlp.proto.http", "server.telemetry.tracing.exporter otlp")
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter(endpoint=config.endpoint)
        self.provider.add_span_processor(BatchSpanProcessor(exporter))
        self.tracer: Tracer = self.provider.get_tracer("llama_stack")

    def shutdown(self) -> None:
        # Typed in some opentelemetry-sdk releases and not in others: call it through Any.
        provider: Any = self.provider
        provider.shutdown()


class TraceRequests:
    """A SERVER span around each HTTP request, named `<METHOD> <route template>`."""

    def __init__(self, app: ASGIApp, tracing: Tracing) -> None:
        self.app = app
        self.tracer = tracing.tracer
        from opentelemetry.trace import SpanKind, StatusCode
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self.propagator = TraceContextTextMapPropagator()
        self.server_kind = SpanKind.SERVER
        self.error_code = StatusCode.ERROR

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        carrier = {name.decode(): value.decode("latin-1") for name, value in scope["headers"] if name in _PROPAGATED}
        parent = self.propagator.extract(carrier) if carrier else None
        method: str = scope["method"]
        attributes: dict[str, Any] = {"http.request.method": method, "url.path": scope["path"]}
        with self.tracer.start_as_current_span(
            method, context=parent, kind=self.server_kind, attributes=attributes
        ) as span:
            recorder = StatusRecorder(send)
            try:
                await self.app(scope, receive, recorder)
            finally:
                route = getattr(scope.get("route"), "path", None)
                if route is not None:
                    span.update_name(f"{method} {route}")
                    span.set_attribute("http.route", route)
                span.set_attribute("http.response.status_code", recorder.status)
                if recorder.status >= 500:
                    span.set_status(self.error_code)
