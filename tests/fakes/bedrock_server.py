"""A fake Bedrock runtime endpoint over HTTP, for servers in their own processes: point their
boto3 client at it (`endpoint_url`, e.g. the bedrock distribution's BEDROCK_ENDPOINT_URL) and
botocore speaks to it as to AWS — signed REST-JSON requests, event-stream answers.

It serves bedrock-runtime's routes with the replies of tests/fakes/bedrock_runtime.py (Converse,
ConverseStream, InvokeModel, InvokeModelWithResponseStream) and tests/fakes/bedrock_guardrail.py
(ApplyGuardrail, for the guardrails it is told exist). Errors carry `x-amzn-errortype`, as AWS's.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from tests.fakes.bedrock_guardrail import apply_guardrail
from tests.fakes.bedrock_runtime import FakeBedrockRuntime
from tests.fakes.bedrock_stream import EventStreamBody
from tests.fakes.openai_replies import BadRequest

ROUTES = {
    "converse": "Converse",
    "converse-stream": "ConverseStream",
    "invoke": "InvokeModel",
    "invoke-with-response-stream": "InvokeModelWithResponseStream",
}


def _error(status: int, kind: str, message: str) -> Response:
    return Response(json.dumps({"message": message}), status, {"x-amzn-errortype": kind}, "application/json")


class FakeBedrockServer:
    def __init__(self, guardrails: dict[str, set[str]] | None = None, embedding_dimensions: int = 1024) -> None:
        self.runtime = FakeBedrockRuntime(embedding_dimensions=embedding_dimensions)
        self.guardrails = guardrails or {}  # guardrail id -> the versions it has
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.app = Starlette(
            routes=[
                Route("/model/{model_id:path}/{action}", self.model, methods=["POST"]),
                Route("/guardrail/{guardrail}/version/{version}/apply", self.guardrail, methods=["POST"]),
            ]
        )

    async def _body(self, request: Request) -> dict[str, Any] | Response:
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            return _error(400, "ValidationException", "The request body is not valid JSON.")
        return body if isinstance(body, dict) else _error(400, "ValidationException", "Expected a JSON object.")

    async def model(self, request: Request) -> Response:
        operation = ROUTES.get(request.path_params["action"])
        if operation is None:
            return _error(404, "UnknownOperationException", "Unknown operation.")
        body = await self._body(request)
        if isinstance(body, Response):
            return body
        self.calls.append((operation, {"modelId": request.path_params["model_id"], **body}))
        try:
            answer = self.runtime.reply(operation, body)
        except BadRequest as e:
            return _error(400, "ValidationException", e.message)
        if isinstance(answer, EventStreamBody):
            return StreamingResponse(iter(answer.frames), media_type="application/vnd.amazon.eventstream")
        return Response(answer.getvalue(), media_type="application/json")

    async def guardrail(self, request: Request) -> Response:
        body = await self._body(request)
        if isinstance(body, Response):
            return body
        guardrail, version = request.path_params["guardrail"], request.path_params["version"]
        self.calls.append(("ApplyGuardrail", {"guardrailIdentifier": guardrail, "guardrailVersion": version, **body}))
        if version not in self.guardrails.get(guardrail, set()):
            return _error(404, "ResourceNotFoundException", f"Guardrail {guardrail} version {version} not found.")
        if body.get("source") not in ("INPUT", "OUTPUT"):
            return _error(400, "ValidationException", "source must be INPUT or OUTPUT.")
        return Response(json.dumps(apply_guardrail(body)), media_type="application/json")


@contextmanager
def serve(fake: FakeBedrockServer) -> Iterator[str]:
    """Serve `fake` on a free localhost port; yields its endpoint URL."""
    config = uvicorn.Config(
        fake.app, host="127.0.0.1", port=0, log_level="warning", lifespan="off", timeout_graceful_shutdown=2
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the fake Bedrock server did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
