"""Telemetry: off by default (no middleware, no wrapper); Prometheus metrics on /metrics; GenAI spans
around inference calls under a server span; request ids in a header and in JSON logs; and the run
config examples of docs/operations.md."""

from __future__ import annotations

import asyncio
import http.server
import io
import json
import logging
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client.parser import text_string_to_metric_families

from llama_stack.distribution.resolver import build_stack
from llama_stack.distribution.spec import parse_run_config
from llama_stack.distribution.wrappers import MeteredInference
from llama_stack.server.app import create_app
from llama_stack.server.observability import JsonFormatter

KEY = "sk-observer-0123456789abcdef"


def run_config(tmp_path: Path, **server: Any) -> dict[str, Any]:
    return {
        "version": 2,
        "image_name": "telemetry",
        "providers": {"inference": [{"provider_id": "scripted", "provider_type": "test::scripted"}]},
        "metadata_store": {"type": "sqlite", "db_path": str(tmp_path / "registry.db")},
        "models": [{"model_id": "echo"}],
        "server": server,
    }


MakeApp = Callable[..., Coroutine[Any, Any, tuple[FastAPI, httpx.AsyncClient]]]


@pytest.fixture
async def make_app(tmp_path: Path) -> AsyncIterator[MakeApp]:
    opened: list[Any] = []

    async def make(**server: Any) -> tuple[FastAPI, httpx.AsyncClient]:
        stack = await build_stack(parse_run_config(run_config(tmp_path, **server), env={}))
        app = create_app(stack)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://stack")
        opened.append((client, app, stack))
        return app, client

    yield make
    for client, app, stack in opened:
        await client.aclose()
        await app.state.operations.close()
        await stack.shutdown()


def chat(text: str = "hello there", **extra: Any) -> dict[str, Any]:
    return {"model_id": "echo", "messages": [{"role": "user", "content": text}], **extra}


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The samples of one metric, keyed by their sorted labels."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


async def test_telemetry_is_off_by_default_and_costs_nothing(make_app: MakeApp) -> None:
    app, http = await make_app()
    response = await http.post("/alpha/inference/chat-completion", json=chat())
    assert response.status_code == 200 and "x-request-id" not in response.headers
    assert (await http.get("/metrics")).status_code == 404
    # No middleware beyond the body limit and provider data, and the provider is not wrapped.
    assert [m.cls.__name__ for m in app.user_middleware] == ["RequestBodyGuard", "ProviderData"]  # type: ignore[attr-defined]
    assert not isinstance(app.state.stack.models.providers["scripted"], MeteredInference)


async def test_metrics_count_requests_latency_tokens_and_errors(make_app: MakeApp) -> None:
    _, http = await make_app(telemetry={"metrics": True})
    assert (await http.post("/alpha/inference/chat-completion", json=chat())).status_code == 200
    v1 = {"model": "echo", "messages": [{"role": "user", "content": "a b c"}], "stream": True}
    assert (await http.post("/v1/chat/completions", json=v1)).status_code == 200
    assert (await http.post("/alpha/inference/chat-completion", json=chat("fail-now"))).status_code == 502
    assert (await http.get("/alpha/nowhere")).status_code == 404

    exposition = await http.get("/metrics")
    assert exposition.headers["content-type"].startswith("text/plain")
    text = exposition.text
    requests = samples(text, "llama_stack_http_requests_total")
    assert requests[(("method", "POST"), ("route", "/alpha/inference/chat-completion"), ("status", "200"))] == 1
    assert requests[(("method", "POST"), ("route", "/alpha/inference/chat-completion"), ("status", "502"))] == 1
    assert requests[(("method", "POST"), ("route", "/v1/chat/completions"), ("status", "200"))] == 1
    assert requests[(("method", "GET"), ("route", "<unrouted>"), ("status", "404"))] == 1
    latency = samples(text, "llama_stack_http_request_duration_seconds_count")
    assert latency[(("method", "POST"), ("route", "/alpha/inference/chat-completion"))] == 2

    provider = (("model", "echo"), ("provider", "scripted"), ("provider_type", "test::scripted"))
    tokens = samples(text, "llama_stack_tokens_total")
    # "hello there" -> "echo: hello there" (2 + 3 words), "a b c" -> "echo: a b c" (3 + 4 words)
    assert tokens[(*provider, ("type", "input"))] == 5
    assert tokens[(*provider, ("type", "output"))] == 7
    calls = samples(text, "llama_stack_inference_requests_total")
    assert calls[(*provider[:1], ("operation", "chat"), *provider[1:])] == 3
    errors = samples(text, "llama_stack_inference_errors_total")
    assert errors == {(("error", "UpstreamError"), *provider[:1], ("operation", "chat"), *provider[1:]): 1}
    first_token = samples(text, "llama_stack_time_to_first_token_seconds_count")
    assert first_token[(*provider[:1], ("operation", "chat"), *provider[1:])] == 2


async def test_metrics_need_the_inspect_scope_and_count_quota_refusals(make_app: MakeApp) -> None:
    ops_key = "sk-ops-scraper-0123456789"
    keys = [
        {"name": "chat", "key": KEY, "scopes": {"apis": ["inference"]}},
        {"name": "ops", "key": ops_key, "scopes": {"apis": ["inspect"]}},
    ]
    _, http = await make_app(telemetry={"metrics": True}, auth={"keys": keys}, quotas={"requests_per_minute": 1})
    chat_key, scraper = {"Authorization": f"Bearer {KEY}"}, {"Authorization": f"Bearer {ops_key}"}
    assert (await http.get("/metrics")).status_code == 401
    assert (await http.get("/metrics", headers=chat_key)).status_code == 403
    left = 60 - time.time() % 60
    if left < 5:  # the two requests must fall in one clock minute
        await asyncio.sleep(left + 0.05)
    statuses = [(await http.post("/alpha/inference/chat-completion", json=chat(), headers=chat_key)).status_code]
    statuses.append((await http.post("/alpha/inference/chat-completion", json=chat(), headers=chat_key)).status_code)
    assert statuses == [200, 429]

    text = (await http.get("/metrics", headers=scraper)).text  # scrapes are not counted by quotas
    assert (await http.get("/metrics", headers=scraper)).status_code == 200
    assert samples(text, "llama_stack_quota_rejections_total") == {
        (("key", "chat"), ("limit", "requests_per_minute")): 1
    }
    requests = samples(text, "llama_stack_http_requests_total")
    assert requests[(("method", "GET"), ("route", "<unrouted>"), ("status", "401"))] == 1
    assert requests[(("method", "POST"), ("route", "<unrouted>"), ("status", "429"))] == 1


@pytest.fixture
def spans() -> InMemorySpanExporter:
    return InMemorySpanExporter()


async def traced(make_app: MakeApp, exporter: InMemorySpanExporter) -> httpx.AsyncClient:
    app, http = await make_app(telemetry={"tracing": {"exporter": "console"}})
    app.state.operations.tracing.provider.add_span_processor(SimpleSpanProcessor(exporter))
    return http


def by_kind(finished: tuple[ReadableSpan, ...], kind: SpanKind) -> list[ReadableSpan]:
    return [span for span in finished if span.kind == kind]


async def test_inference_spans_follow_the_genai_conventions(make_app: MakeApp, spans: InMemorySpanExporter) -> None:
    http = await traced(make_app, spans)
    body = chat(sampling_params={"max_tokens": 50, "temperature": 0.5})
    assert (await http.post("/alpha/inference/chat-completion", json=body)).status_code == 200

    [client] = by_kind(spans.get_finished_spans(), SpanKind.CLIENT)
    [server] = by_kind(spans.get_finished_spans(), SpanKind.SERVER)
    assert client.name == "chat echo"
    assert dict(client.attributes or {}) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.system": "test::scripted",
        "gen_ai.request.model": "echo",
        "llama_stack.provider_id": "scripted",
        "gen_ai.request.max_tokens": 50,
        "gen_ai.request.temperature": 0.5,
        "gen_ai.request.top_p": 0.95,
        "gen_ai.usage.input_tokens": 2,
        "gen_ai.usage.output_tokens": 3,
        "gen_ai.response.finish_reasons": ("end_of_turn",),
    }
    assert server.name == "POST /alpha/inference/chat-completion"
    assert server.attributes is not None and server.attributes["http.response.status_code"] == 200
    assert client.parent is not None and client.parent.span_id == server.context.span_id


async def test_a_stream_span_lasts_to_its_end_and_continues_the_callers_trace(
    make_app: MakeApp, spans: InMemorySpanExporter
) -> None:
    http = await traced(make_app, spans)
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    headers = {"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"}
    v1 = {"model": "echo", "messages": [{"role": "user", "content": "one two"}], "stream": True}
    assert (await http.post("/v1/chat/completions", json=v1, headers=headers)).status_code == 200
    [client] = by_kind(spans.get_finished_spans(), SpanKind.CLIENT)
    assert format(client.context.trace_id, "032x") == trace_id
    assert client.attributes is not None and client.attributes["gen_ai.usage.output_tokens"] == 3

    spans.clear()
    failed = await http.post("/alpha/inference/chat-completion", json=chat("fail-now"))
    assert failed.status_code == 502
    [client] = by_kind(spans.get_finished_spans(), SpanKind.CLIENT)
    assert client.status.status_code == StatusCode.ERROR
    assert client.attributes is not None and client.attributes["error.type"] == "UpstreamError"
    [server] = by_kind(spans.get_finished_spans(), SpanKind.SERVER)
    assert server.status.status_code == StatusCode.ERROR


async def test_the_console_exporter_prints_spans(make_app: MakeApp, capsys: pytest.CaptureFixture[str]) -> None:
    app, http = await make_app(telemetry={"tracing": {"exporter": "console", "service_name": "ops-test"}})
    await http.post("/alpha/inference/chat-completion", json=chat())
    app.state.operations.tracing.provider.force_flush()
    printed = capsys.readouterr().out
    assert '"gen_ai.request.model": "echo"' in printed and '"service.name": "ops-test"' in printed


@pytest.fixture
def collector() -> Iterator[tuple[str, list[bytes]]]:
    """An OTLP/HTTP collector that keeps the bodies posted to /v1/traces."""
    received: list[bytes] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(self.rfile.read(int(self.headers["content-length"])))
            self.send_response(200 if self.path == "/v1/traces" else 404)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1/traces", received
    server.shutdown()


async def test_the_otlp_exporter_posts_to_the_configured_endpoint(
    make_app: MakeApp, collector: tuple[str, list[bytes]]
) -> None:
    endpoint, received = collector
    app, http = await make_app(telemetry={"tracing": {"exporter": "otlp", "endpoint": endpoint}})
    await http.post("/alpha/inference/chat-completion", json=chat())
    app.state.operations.tracing.provider.force_flush()
    assert received and b"gen_ai.request.model" in b"".join(received) and b"echo" in b"".join(received)


async def test_request_ids_are_returned_honoured_when_sane_and_logged_as_json(
    make_app: MakeApp, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="llama_stack.access")
    _, http = await make_app(telemetry={"request_ids": True})
    fresh = await http.get("/alpha/health")
    assert re.fullmatch(r"[0-9a-f]{32}", fresh.headers["x-request-id"])
    kept = await http.get("/alpha/models/list", headers={"x-request-id": "trace-42.retry:1"})
    assert kept.headers["x-request-id"] == "trace-42.retry:1"
    for insane in ("has spaces and ! marks", "x" * 200):
        replaced = await http.get("/alpha/health", headers={"x-request-id": insane})
        assert re.fullmatch(r"[0-9a-f]{32}", replaced.headers["x-request-id"])
    streamed = await http.post("/alpha/inference/chat-completion", json=chat(stream=True))
    assert re.fullmatch(r"[0-9a-f]{32}", streamed.headers["x-request-id"])

    [record] = [r for r in caplog.records if getattr(r, "path", None) == "/alpha/models/list"]
    line = json.loads(JsonFormatter().format(record))
    assert line["logger"] == "llama_stack.access" and line["message"] == "GET /alpha/models/list 200"
    assert line["status"] == 200 and line["method"] == "GET" and line["duration_ms"] >= 0


async def test_json_logs_carry_the_request_id_of_the_request_that_logged(make_app: MakeApp) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    root.addHandler(handler)
    level = root.level
    root.setLevel(logging.INFO)
    try:
        _, http = await make_app(telemetry={"request_ids": True, "log_format": "json"})
        await http.get("/alpha/health", headers={"x-request-id": "req-1"})
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    [access] = [line for line in lines if line["logger"] == "llama_stack.access"]
    assert access["request_id"] == "req-1" and access["path"] == "/alpha/health" and access["status"] == 200


DOC = Path(__file__).parents[2] / "docs" / "operations.md"
YAML_BLOCK = re.compile(r"```yaml\n(?P<body>.*?)```", re.DOTALL)


def test_the_run_configs_in_the_operations_doc_parse(tmp_path: Path) -> None:
    import yaml

    blocks = [match["body"] for match in YAML_BLOCK.finditer(DOC.read_text())]
    assert len(blocks) >= 4
    env = {
        "CI_KEY": "sk-ci-key-from-the-environment",
        "ADMIN_KEY": "sk-admin-key-from-the-env",
        "REDIS_URL": "redis://r",
    }
    for block in blocks:
        config = parse_run_config(yaml.safe_load(block), env=env)
        assert (
            config.server.auth
            or config.server.quotas
            or config.server.telemetry.metrics
            or config.server.telemetry.tracing
        )
