"""A fast, faithful fake of an OpenAI-compatible server (vLLM, TGI, Together... all speak this).

Routes: GET /v1/models, POST /v1/chat/completions, /v1/completions, /v1/embeddings — OpenAI's
bodies, SSE chunks ending in `data: [DONE]`, a usage chunk when `stream_options.include_usage`,
tool calls streamed in argument fragments, OpenAI's error envelope. Replies are deterministic
(tests/fakes/openai_replies.py). Handlers stay tiny: the fake is also the backend of the latency
benchmark, where its own cost must stay far below a millisecond.

Faults, for the tests of upstream errors. A prompt holding `[[fake:MODE]]` fails that way every
time; `POST /fake/faults {"mode": MODE, "times": N, "retry_after": S}` (or `state.fail_next`)
fails the next N requests. MODE is one of
    500       HTTP 500 with OpenAI's error body
    429       HTTP 429 with Retry-After: S (default 1)
    hang      no answer until the client gives up
    die       streams: two chunks, then the connection drops; otherwise the connection drops
              before the body is complete
    garbage   HTTP 200 whose body (or SSE data) is not JSON
    slow      streams a long answer, one token every 10 ms (for cancellation tests)
`GET /fake/stats` tells requests per route and the streams open now; `POST /fake/reset` clears.

    python -m tests.fakes.openai_server --port 8000        # standalone
    with FakeOpenAIServer() as fake: fake.base_url         # in-process, on a free port
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.fakes.openai_faults import (
    DEFAULT_MODELS,
    SLOW_DELAY_S,
    SLOW_TOKENS,
    FakeState,
    Fault,
    UpstreamDied,
    error_response,
    fault_for,
    fault_response,
)
from tests.fakes.openai_replies import (
    BadRequest,
    Reply,
    chat_logprobs,
    chat_reply,
    completion_logprobs,
    completion_reply,
    embedding,
)


async def _read_json(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
    except ValueError as e:
        raise BadRequest("the body is not valid JSON") from e
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


def _sse(payload: dict[str, Any] | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f"data: {data}\n\n".encode()


def _usage(reply: Reply) -> dict[str, int]:
    completion = len(reply.tokens) + sum(len(c["arguments"].split()) for c in reply.tool_calls)
    return {
        "prompt_tokens": reply.prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": reply.prompt_tokens + completion,
    }


class FakeOpenAI:
    """The Starlette app and its routes over one FakeState."""

    def __init__(self, state: FakeState) -> None:
        self.state = state
        self.app = Starlette(
            routes=[
                Route("/v1/models", self.models, methods=["GET"]),
                Route("/v1/chat/completions", self.chat, methods=["POST"]),
                Route("/v1/completions", self.completions, methods=["POST"]),
                Route("/v1/embeddings", self.embeddings, methods=["POST"]),
                Route("/fake/faults", self.faults, methods=["POST"]),
                Route("/fake/stats", self.stats, methods=["GET"]),
                Route("/fake/reset", self.reset, methods=["POST"]),
            ]
        )

    async def models(self, request: Request) -> Response:
        self.state.requests["models"] += 1
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in self.state.models]
        return JSONResponse({"object": "list", "data": data})

    async def _accept(self, request: Request, route: str) -> tuple[dict[str, Any], Response | None]:
        """Count and parse a request; the response is set when it fails before any reply."""
        self.state.requests[route] += 1
        authorization = request.headers.get("authorization")
        self.state.authorizations.append(authorization)
        if self.state.api_key is not None and authorization != f"Bearer {self.state.api_key}":
            return {}, error_response(
                401, "Incorrect API key provided.", "invalid_request_error", code="invalid_api_key"
            )
        try:
            body = await _read_json(request)
        except BadRequest as e:
            return {}, error_response(400, e.message, "invalid_request_error")
        self.state.bodies.append(body)
        fault = fault_for(self.state, body)
        if fault is not None:
            request.state.fault = fault
            response = await fault_response(fault, request, bool(body.get("stream")))
            if response is not None:
                return body, response
        if body.get("model") not in self.state.models:
            message = f"The model `{body.get('model')}` does not exist or you do not have access to it."
            return body, error_response(404, message, "invalid_request_error", "model", "model_not_found")
        return body, None

    async def chat(self, request: Request) -> Response:
        body, failed = await self._accept(request, "chat")
        if failed is not None:
            return failed
        try:
            reply = chat_reply(body)
        except BadRequest as e:
            return error_response(400, e.message, "invalid_request_error", e.param)
        created, ident = int(time.time()), f"chatcmpl-{next(self.state.ids)}"
        top = body.get("top_logprobs") or 0
        if body.get("stream"):
            return self._stream(request, self._chat_chunks(body, reply, ident, created, top))
        message: dict[str, Any] = {"role": "assistant", "content": reply.text if not reply.tool_calls else None}
        if reply.tool_calls:
            message["tool_calls"] = [
                {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
                for c in reply.tool_calls
            ]
        logprobs = {"content": chat_logprobs(reply.tokens, top)} if body.get("logprobs") else None
        choice = {"index": 0, "message": message, "logprobs": logprobs, "finish_reason": reply.finish_reason}
        return JSONResponse(
            {
                "id": ident,
                "object": "chat.completion",
                "created": created,
                "model": body["model"],
                "choices": [choice],
                "usage": _usage(reply),
            }
        )

    def _chat_chunks(
        self, body: dict[str, Any], reply: Reply, ident: str, created: int, top: int
    ) -> Iterator[dict[str, Any]]:
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        base = {"id": ident, "object": "chat.completion.chunk", "created": created, "model": body["model"]}
        if include_usage:
            base["usage"] = None

        def chunk(delta: dict[str, Any], finish: str | None = None, logprobs: Any = None) -> dict[str, Any]:
            return {**base, "choices": [{"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish}]}

        yield chunk({"role": "assistant", "content": "" if not reply.tool_calls else None})
        for token in reply.tokens:
            logprobs = {"content": chat_logprobs([token], top)} if body.get("logprobs") else None
            yield chunk({"content": token}, logprobs=logprobs)
        for index, call in enumerate(reply.tool_calls):
            head = {"index": index, "id": call["id"], "type": "function"}
            yield chunk({"tool_calls": [{**head, "function": {"name": call["name"], "arguments": ""}}]})
            arguments = call["arguments"]
            for start in range(0, len(arguments), 6):  # fragments, as OpenAI streams them
                yield chunk({"tool_calls": [{"index": index, "function": {"arguments": arguments[start : start + 6]}}]})
        yield chunk({}, finish=reply.finish_reason)
        if include_usage:
            yield {**base, "choices": [], "usage": _usage(reply)}

    async def completions(self, request: Request) -> Response:
        body, failed = await self._accept(request, "completions")
        if failed is not None:
            return failed
        try:
            reply = completion_reply(body)
        except BadRequest as e:
            return error_response(400, e.message, "invalid_request_error", e.param)
        created, ident = int(time.time()), f"cmpl-{next(self.state.ids)}"
        top = body.get("logprobs")
        base = {"id": ident, "object": "text_completion", "created": created, "model": body["model"]}

        def choice(tokens: list[str], finish: str | None, offset: int = 0) -> dict[str, Any]:
            logprobs = completion_logprobs(tokens, top, offset) if top is not None else None
            return {"index": 0, "text": "".join(tokens), "logprobs": logprobs, "finish_reason": finish}

        if not body.get("stream"):
            return JSONResponse(
                {**base, "choices": [choice(reply.tokens, reply.finish_reason)], "usage": _usage(reply)}
            )

        def chunks() -> Iterator[dict[str, Any]]:
            offset = 0
            for i, token in enumerate(reply.tokens):
                last = i == len(reply.tokens) - 1
                yield {**base, "choices": [choice([token], reply.finish_reason if last else None, offset)]}
                offset += len(token)
            if (body.get("stream_options") or {}).get("include_usage"):
                yield {**base, "choices": [], "usage": _usage(reply)}

        return self._stream(request, chunks())

    def _stream(self, request: Request, chunks: Iterator[dict[str, Any]]) -> Response:
        fault: Fault | None = getattr(request.state, "fault", None)
        return StreamingResponse(self._sse_frames(chunks, fault), media_type="text/event-stream")

    async def _sse_frames(self, chunks: Iterator[dict[str, Any]], fault: Fault | None) -> AsyncIterator[bytes]:
        self.state.open_streams += 1
        try:
            mode = fault.mode if fault else None
            if mode == "garbage":
                yield b"data: {this is not json\n\n"
                return
            if mode == "slow":
                first = next(chunks)
                yield _sse(first)
                for i in range(SLOW_TOKENS):
                    await asyncio.sleep(SLOW_DELAY_S)
                    delta = {"content": f" w{i}"}
                    yield _sse({**first, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
            for sent, payload in enumerate(chunks):
                if mode == "die" and sent == 2:
                    raise UpstreamDied("the fake drops the connection mid-stream")
                yield _sse(payload)
            yield b"data: [DONE]\n\n"
        finally:
            self.state.open_streams -= 1

    async def embeddings(self, request: Request) -> Response:
        body, failed = await self._accept(request, "embeddings")
        if failed is not None:
            return failed
        texts = body.get("input")
        texts = [texts] if isinstance(texts, str) else texts
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) and t for t in texts):
            return error_response(
                400, "input must be a non-empty string or array of strings", "invalid_request_error", "input"
            )
        dimensions = body.get("dimensions") or self.state.embedding_dimensions
        data = [{"object": "embedding", "index": i, "embedding": embedding(t, dimensions)} for i, t in enumerate(texts)]
        tokens = sum(len(t.split()) for t in texts)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return JSONResponse({"object": "list", "data": data, "model": body["model"], "usage": usage})

    async def faults(self, request: Request) -> Response:
        body = await request.json()
        try:
            self.state.fail_next(body["mode"], int(body.get("times", 1)), float(body.get("retry_after", 1)))
        except (KeyError, ValueError) as e:
            return error_response(400, str(e), "invalid_request_error")
        return JSONResponse({"queued": len(self.state.queued)})

    async def stats(self, request: Request) -> Response:
        return JSONResponse({"requests": dict(self.state.requests), "open_streams": self.state.open_streams})

    async def reset(self, request: Request) -> Response:
        self.state.reset()
        return JSONResponse({})


def create_app(state: FakeState | None = None) -> Starlette:
    return FakeOpenAI(state or FakeState()).app


class FakeOpenAIServer:
    """The fake served by uvicorn in a background thread on a free port of 127.0.0.1."""

    def __init__(self, state: FakeState | None = None) -> None:
        self.state = state or FakeState()
        self.app = create_app(self.state)
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self.port: int = self._socket.getsockname()[1]
        config = uvicorn.Config(
            self.app, log_level="critical", access_log=False, lifespan="off", timeout_graceful_shutdown=1
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, name="fake-openai", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def start(self) -> FakeOpenAIServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the fake OpenAI server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=5)
        self._socket.close()

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description="A fake OpenAI-compatible server (see the module docstring).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--models", nargs="*", default=list(DEFAULT_MODELS), help="the model ids it serves")
    args = parser.parse_args()
    app = create_app(FakeState(models=tuple(args.models)))
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
