"""A faithful fake of the Ollama HTTP API, served by uvicorn on a free port in a background thread.

It speaks Ollama's wire format as the official `ollama` client expects it: NDJSON streams (one
JSON object per line; every part has model, created_at and done; the last adds done_reason and
the timing and token counts), `{"error": "..."}` bodies with Ollama's status codes and messages,
and the endpoints /api/generate (raw and templated), /api/chat (images, tools), /api/embed,
/api/tags, /api/show, /api/pull (progress events) and /api/version. What it answers comes from
the scripted model in tests/fakes/ollama_model.py.

Tests steer and observe it through the FakeOllama object: which models are installed or
pullable, the bodies it received, how many streams are open right now, a per-token delay, a
stall before answering, and errors to answer the next requests with.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.fakes.guard_replies import guard_verdict, is_guard_model
from tests.fakes.ollama_model import FakeModel, count_tokens, embed, raw_reply, reply_text, split_tokens

VERSION = "0.5.7"


def _normalize(name: str) -> str:
    name = name.strip().lower()
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


@dataclass
class Received:
    path: str
    body: dict[str, Any]


@dataclass
class FakeOllama:
    installed: list[FakeModel] = field(default_factory=list)
    library: list[FakeModel] = field(default_factory=list)  # what /api/pull can fetch
    token_delay_s: float = 0.0
    stall_s: float = 0.0  # wait before answering a generation (to provoke client timeouts)
    fail_mid_stream: str | None = None  # end streams after one token with this {"error": ...} line
    pull_steps: int = 4

    def __post_init__(self) -> None:
        self.models = {_normalize(m.name): m for m in self.installed}
        self.pullable = {_normalize(m.name): m for m in self.library}
        self.received: list[Received] = []
        self.files: dict[str, bytes] = {}  # served at /files/<name>, e.g. images given to the stack by URL
        self.injected_errors: list[tuple[int, str]] = []
        self._open_streams = 0
        self._lock = threading.Lock()
        self.app = Starlette(
            routes=[
                Route("/", lambda _: PlainTextResponse("Ollama is running"), methods=["GET", "HEAD"]),
                Route("/api/version", lambda _: JSONResponse({"version": VERSION})),
                Route("/api/tags", self.tags),
                Route("/api/show", self.show, methods=["POST"]),
                Route("/api/pull", self.pull, methods=["POST"]),
                Route("/api/generate", self.generate, methods=["POST"]),
                Route("/api/chat", self.chat, methods=["POST"]),
                Route("/api/embed", self.embed, methods=["POST"]),
                Route("/files/{name}", lambda r: Response(self.files[r.path_params["name"]], media_type="image/png")),
            ]
        )

    # --- what tests observe ---------------------------------------------------------------------

    @property
    def open_streams(self) -> int:
        with self._lock:
            return self._open_streams

    def last(self, path: str) -> dict[str, Any]:
        """The body of the latest request to `path`."""
        return next(r.body for r in reversed(self.received) if r.path == path)

    def inject_error(self, status: int, message: str) -> None:
        """Answer the next generation, chat, embed or pull request with this error."""
        self.injected_errors.append((status, message))

    # --- plumbing -------------------------------------------------------------------------------

    async def _read(self, request: Request) -> dict[str, Any] | Response:
        try:
            body = json.loads(await request.body() or b"{}")
        except json.JSONDecodeError as error:
            return _error(400, f"invalid character in JSON: {error.msg}")
        self.received.append(Received(request.url.path, body))
        if self.injected_errors and request.url.path != "/api/show":
            return _error(*self.injected_errors.pop(0))
        return body if isinstance(body, dict) else _error(400, "json: cannot unmarshal into Go value")

    async def _read_for_model(self, request: Request) -> tuple[dict[str, Any], FakeModel] | Response:
        body = await self._read(request)
        if isinstance(body, Response):
            return body
        name = body.get("model") or ""
        if not name:
            return _error(400, "model is required")
        model = self.models.get(_normalize(name))
        return (body, model) if model is not None else _error(404, f'model "{name}" not found, try pulling it first')

    def _ndjson(self, parts: AsyncIterator[dict[str, Any]]) -> StreamingResponse:
        async def lines() -> AsyncIterator[bytes]:
            with self._lock:
                self._open_streams += 1
            try:
                async for part in parts:
                    yield (json.dumps(part) + "\n").encode()
            finally:
                with self._lock:
                    self._open_streams -= 1

        return StreamingResponse(lines(), media_type="application/x-ndjson")

    # --- models ---------------------------------------------------------------------------------

    def _details(self, model: FakeModel) -> dict[str, Any]:
        return {
            "parent_model": "", "format": "gguf", "family": model.family, "families": [model.family],
            "parameter_size": model.parameter_size, "quantization_level": model.quantization,
        }  # fmt: skip

    async def tags(self, request: Request) -> Response:
        listing = [
            {"name": m.name, "model": m.name, "modified_at": _now(), "size": m.size,
             "digest": f"{abs(hash(m.name)):064x}"[:64], "details": self._details(m)}
            for m in self.models.values()
        ]  # fmt: skip
        return JSONResponse({"models": listing})

    async def show(self, request: Request) -> Response:
        body = await self._read(request)
        if isinstance(body, Response):
            return body
        name = body.get("model") or body.get("name") or ""
        model = self.models.get(_normalize(name))
        if model is None:
            return _error(404, f"model '{name}' not found")
        arch = model.family
        return JSONResponse(
            {
                "license": "LLAMA 3.2 COMMUNITY LICENSE AGREEMENT",
                "modelfile": f'# Modelfile generated by "ollama show"\nFROM {model.name}\n',
                "parameters": 'stop "<|start_header_id|>"\nstop "<|end_header_id|>"\nstop "<|eot_id|>"',
                "template": model.template,
                "details": self._details(model),
                "model_info": {
                    "general.architecture": arch,
                    f"{arch}.context_length": model.context_length,
                    f"{arch}.embedding_length": model.embedding_length,
                },
                "capabilities": list(model.capabilities),
                "modified_at": _now(),
            }
        )

    async def pull(self, request: Request) -> Response:
        body = await self._read(request)
        if isinstance(body, Response):
            return body
        name = body.get("model") or body.get("name") or ""
        model = self.models.get(_normalize(name)) or self.pullable.get(_normalize(name))
        missing = "pull model manifest: file does not exist"
        if not body.get("stream", True):
            if model is None:
                return _error(500, missing)
            self.models[_normalize(name)] = model
            return JSONResponse({"status": "success"})

        async def events() -> AsyncIterator[dict[str, Any]]:
            yield {"status": "pulling manifest"}
            if model is None:
                yield {"error": missing}
                return
            for digest, total in ((f"sha256:{'7' * 64}", model.size), (f"sha256:{'9' * 64}", 1429)):
                for step in range(self.pull_steps + 1):
                    await asyncio.sleep(self.token_delay_s)
                    completed = total * step // self.pull_steps
                    yield {
                        "status": f"pulling {digest[7:19]}",
                        "digest": digest,
                        "total": total,
                        "completed": completed,
                    }
            for status in ("verifying sha256 digest", "writing manifest"):
                yield {"status": status}
            self.models[_normalize(name)] = model
            yield {"status": "success"}

        return self._ndjson(events())

    # --- generation -----------------------------------------------------------------------------

    async def generate(self, request: Request) -> Response:
        read = await self._read_for_model(request)
        if isinstance(read, Response):
            return read
        body, model = read
        if "completion" not in model.capabilities:
            return _error(400, f'"{model.name}" does not support generate')
        prompt = str(body.get("prompt") or "")
        images = body.get("images") or []
        if not prompt and not images:
            return JSONResponse({"model": model.name, "created_at": _now(), "response": "", "done": True,
                                 "done_reason": "load"})  # fmt: skip
        verdict = guard_verdict(prompt) if is_guard_model(model.name) else None
        if verdict is not None:  # a Llama Guard model judging a conversation (tests/fakes/guard_replies.py)
            text = verdict
        elif body.get("raw"):
            text, _ = raw_reply(prompt, body.get("format"))
        else:
            text, _ = reply_text("user", prompt, tool_format=None, images=len(images), fmt=body.get("format"))
        return self._answer(body, model, "response", split_tokens(text), count_tokens(prompt), tool_calls=None)

    async def chat(self, request: Request) -> Response:
        read = await self._read_for_model(request)
        if isinstance(read, Response):
            return read
        body, model = read
        messages = body.get("messages") or []
        tools = body.get("tools") or []
        if tools and "tools" not in model.capabilities:
            return _error(400, f"registry.ollama.ai/library/{model.name} does not support tools")
        images = 0
        for message in messages:
            for image in message.get("images") or []:
                try:
                    base64.b64decode(image, validate=True)
                except (binascii.Error, ValueError):
                    return _error(400, "illegal base64 data at input byte 0")
                images += 1
        if images and "vision" not in model.capabilities:
            return _error(500, f"{model.name} does not support images")
        last = messages[-1] if messages else {"role": "user", "content": ""}
        verdict = guard_verdict(str(last.get("content") or "")) if is_guard_model(model.name) else None
        if verdict is not None:
            return self._answer(body, model, "message", split_tokens(verdict), count_tokens(verdict), tool_calls=None)
        offers_weather = any((t.get("function") or {}).get("name") == "get_weather" for t in tools)
        text, is_call = reply_text(
            str(last.get("role")), str(last.get("content") or ""), tool_format="json" if offers_weather else None,
            images=images, fmt=body.get("format"),
        )  # fmt: skip
        prompt_tokens = sum(count_tokens(str(m.get("content") or "")) + 4 for m in messages)
        if is_call:
            calls = [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]
            return self._answer(body, model, "message", [], prompt_tokens, tool_calls=calls)
        return self._answer(body, model, "message", split_tokens(text), prompt_tokens, tool_calls=None)

    def _answer(
        self, body: dict[str, Any], model: FakeModel, key: str, tokens: list[str], prompt_tokens: int,
        tool_calls: list[dict[str, Any]] | None,
    ) -> Response:  # fmt: skip
        options = body.get("options") or {}
        tokens, done_reason = _limit(tokens, options)
        started = time.perf_counter_ns()

        def piece(text: str, calls: list[dict[str, Any]] | None = None) -> dict[str, Any]:
            if key == "response":
                return {"response": text}
            message: dict[str, Any] = {"role": "assistant", "content": text}
            return {"message": message | ({"tool_calls": calls} if calls else {})}

        def final(text: str) -> dict[str, Any]:
            elapsed = max(1, time.perf_counter_ns() - started)
            return {"model": model.name, "created_at": _now(), **piece(text),
                    "done": True, "done_reason": done_reason, "total_duration": elapsed, "load_duration": 1000,
                    "prompt_eval_count": prompt_tokens, "prompt_eval_duration": elapsed // 2,
                    "eval_count": len(tokens) + (1 if tool_calls else 0), "eval_duration": elapsed // 2}  # fmt: skip

        if not body.get("stream", True):

            async def whole() -> Response:
                await asyncio.sleep(self.stall_s)
                reply = final("".join(tokens))
                if tool_calls:
                    reply["message"]["tool_calls"] = tool_calls
                return JSONResponse(reply)

            return _Deferred(whole)

        async def parts() -> AsyncIterator[dict[str, Any]]:
            await asyncio.sleep(self.stall_s)
            for index, token in enumerate(tokens):
                if index == 1 and self.fail_mid_stream:
                    yield {"error": self.fail_mid_stream}
                    return
                await asyncio.sleep(self.token_delay_s)
                yield {"model": model.name, "created_at": _now(), **piece(token), "done": False}
            if tool_calls:
                yield {"model": model.name, "created_at": _now(), **piece("", tool_calls), "done": False}
            yield final("")

        return self._ndjson(parts())

    async def embed(self, request: Request) -> Response:
        read = await self._read_for_model(request)
        if isinstance(read, Response):
            return read
        body, model = read
        inputs = body.get("input")
        texts = [inputs] if isinstance(inputs, str) else list(inputs or [])
        return JSONResponse(
            {"model": model.name, "embeddings": [embed(text, model.embedding_length) for text in texts],
             "total_duration": 14143917, "load_duration": 1019500,
             "prompt_eval_count": sum(count_tokens(text) for text in texts)}
        )  # fmt: skip


class _Deferred(Response):
    """A response computed when sent, so a stall happens while the client waits for it."""

    def __init__(self, make: Any) -> None:
        super().__init__()
        self._make = make

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        response = await self._make()
        await response(scope, receive, send)


def _limit(tokens: list[str], options: dict[str, Any]) -> tuple[list[str], str]:
    """The tokens Ollama would emit under num_predict and stop, and its done_reason."""
    text = "".join(tokens)
    cuts = [text.find(s) for s in options.get("stop") or [] if s and s in text]
    if cuts:
        tokens = split_tokens(text[: min(cuts)])
    limit = options.get("num_predict")
    if isinstance(limit, int) and 0 <= limit < len(tokens):
        return tokens[:limit], "length"
    return tokens, "stop"


@contextmanager
def serve(fake: FakeOllama) -> Iterator[str]:
    """Serve `fake` on a free localhost port; yields its base URL."""
    config = uvicorn.Config(
        fake.app, host="127.0.0.1", port=0, log_level="warning", lifespan="off", timeout_graceful_shutdown=2
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the fake Ollama server did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
