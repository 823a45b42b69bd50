"""Hand-written nasty inputs, each with the status the server must answer (test_bad_input.py
sends them to a server with a scripted "echo" chat model, an "embedder" embedding model and a
FAISS bank "notes"), and the one error envelope of each face."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

V1, ALPHA = "/v1/chat/completions", "/alpha/inference/chat-completion"
INSERT = "/alpha/memory/insert"
USER = [{"role": "user", "content": "hi"}]
JSON = {"content-type": "application/json"}
MB = 1024 * 1024


@dataclass
class Nasty:
    name: str
    method: str
    path: str
    body: bytes | None
    expected: tuple[int, ...]  # more than one where the design leaves the choice open
    headers: dict[str, str] = field(default_factory=lambda: dict(JSON))
    chunked: bool = False


def js(value: Any) -> bytes:
    return json.dumps(value).encode()


def post(name: str, path: str, body: bytes, *expected: int, **options: Any) -> Nasty:
    return Nasty(name, "POST", path, body, expected, **options)


def get(name: str, path: str, *expected: int) -> Nasty:
    return Nasty(name, "GET", path, None, expected)


def v1_chat(**fields: Any) -> bytes:
    return js({"model": "echo", "messages": USER, **fields})


def alpha_chat(**fields: Any) -> bytes:
    return js({"model_id": "echo", "messages": USER, **fields})


def document(document_id: str, content: Any, **fields: Any) -> bytes:
    return js({"bank_id": "notes", "documents": [{"document_id": document_id, "content": content, **fields}]})


def numbers() -> list[Nasty]:
    hi = b'"messages":[{"role":"user","content":"hi"}]'
    return [
        post("/v1 max_tokens 10**40 (no upper bound)", V1, v1_chat(max_tokens=10**40), 200),
        post("/alpha max_tokens 10**40", ALPHA, alpha_chat(sampling_params={"max_tokens": 10**40}), 200),
        post("/v1 temperature 1e400 (inf)", V1, b'{"model":"echo",' + hi + b',"temperature":1e400}', 400),
        post(
            "/alpha temperature 1e400 (inf)",
            ALPHA,
            b'{"model_id":"echo",' + hi + b',"sampling_params":{"strategy":"top_p","temperature":1e400}}',
            422,
        ),
        post("/v1 temperature NaN", V1, b'{"model":"echo",' + hi + b',"temperature":NaN}', 400),
        post(
            "/alpha temperature NaN",
            ALPHA,
            b'{"model_id":"echo",' + hi + b',"sampling_params":{"temperature":NaN}}',
            422,
        ),
        post("/v1 integer of 5000 digits", V1, b'{"model":"echo",' + hi + b',"max_tokens":' + b"9" * 5000 + b"}", 400),
        post("/v1 max_tokens -1", V1, v1_chat(max_tokens=-1), 400),
        post("/v1 max_tokens 0", V1, v1_chat(max_tokens=0), 400),
        post("/alpha max_tokens -1", ALPHA, alpha_chat(sampling_params={"max_tokens": -1}), 422),
        post("/alpha max_tokens 0 (v0.0.63: no limit)", ALPHA, alpha_chat(sampling_params={"max_tokens": 0}), 200),
    ]


def nesting_and_text() -> list[Nasty]:
    deep = 100_000
    nested = b"[" * deep + b"]" * deep
    metadata = b'{"a":' * 500 + b"1" + b"}" * 500
    surrogate = b'"messages":[{"role":"user","content":"\\ud800"}]'
    return [
        post(f"/v1 arrays nested {deep} deep", V1, b'{"model":"echo","messages":' + nested + b"}", 400),
        post(f"/alpha arrays nested {deep} deep", ALPHA, b'{"model_id":"echo","messages":' + nested + b"}", 400),
        post(
            "/alpha memory metadata nested 500 deep",
            INSERT,
            b'{"bank_id":"notes","documents":[{"document_id":"deep","content":"x","metadata":' + metadata + b"}]}",
            200,
        ),
        post("/v1 invalid UTF-8", V1, b'{"model":"echo","messages":[{"role":"user","content":"\xff\xfe"}]}', 400),
        post("/alpha invalid UTF-8", ALPHA, b'{"model_id":"echo","messages":[{"role":"user","content":"\xff"}]}', 400),
        post("/alpha invalid UTF-8, body-or-query route", "/alpha/agents/turn/get", b"\x89\xc2\x81", 400),
        post(
            f"/alpha arrays nested {deep} deep, body-or-query route",
            "/alpha/agents/session/get",
            b'{"agent_id":' + nested + b"}",
            400,
        ),
        post("/v1 lone surrogate \\ud800", V1, b'{"model":"echo",' + surrogate + b"}", 400, 422),
        post("/alpha lone surrogate \\ud800", ALPHA, b'{"model_id":"echo",' + surrogate + b"}", 400, 422),
        post(
            "/alpha lone surrogate, streamed", ALPHA, b'{"model_id":"echo","stream":true,' + surrogate + b"}", 400, 422
        ),
        post(
            "/v1 NUL byte inside a string",
            V1,
            js({"model": "echo", "messages": [{"role": "user", "content": "a\0b"}]}),
            200,
        ),
        post("/v1 NUL byte in the model id", V1, js({"model": "ec\0ho", "messages": USER}), 404),
        post("/v1 raw NUL byte between tokens", V1, b'{"model":"echo",\x00"messages":[]}', 400),
        post("/alpha NUL bytes in a memory document", INSERT, document("n\0ul", "x\0y"), 200),
        get("/v1/models/%00", "/v1/models/%00", 404),
        get("/alpha/models/get?identifier=<10 kB>", "/alpha/models/get?identifier=" + "a" * 10_000, 404),
    ]


def bodies() -> list[Nasty]:
    word = "x" * (10 * MB)  # one word: the scripted model echoes it in one token
    return [
        post("/v1 JSON sent as text/plain", V1, v1_chat(), 400, headers={"content-type": "text/plain"}),
        post("/alpha JSON sent as text/plain", ALPHA, alpha_chat(), 422, headers={"content-type": "text/plain"}),
        post(
            "/v1 form-encoded body",
            V1,
            b"model=echo",
            400,
            headers={"content-type": "application/x-www-form-urlencoded"},
        ),
        post(
            "/alpha multipart body",
            ALPHA,
            b"--b\r\n\r\nx\r\n--b--\r\n",
            422,
            headers={"content-type": "multipart/form-data; boundary=b"},
        ),
        post("/v1 empty body", V1, b"", 400),
        post("/alpha empty body", ALPHA, b"", 422),
        post("/alpha empty body, body-or-query route", "/alpha/agents/session/get", b"", 422),
        post("/v1 body `null`", V1, b"null", 400),
        post("/alpha body `[]`", ALPHA, b"[]", 422),
        post('/alpha body `"text"`, body-or-query route', "/alpha/agents/turn/get", b'"text"', 400),
        post(
            "/v1 10 MB message (under the 16 MiB limit)",
            V1,
            js({"model": "echo", "messages": [{"role": "user", "content": word}], "max_tokens": 5}),
            200,
        ),
        post(
            "/alpha 10 MB embeddings input",
            "/alpha/inference/embeddings",
            js({"model_id": "embedder", "contents": [word]}),
            200,
        ),
        post("/v1 10 MB of non-JSON", V1, b"x" * (10 * MB), 400),
        post("/v1 17 MB body (over the limit)", V1, b"x" * (17 * MB), 413),
        post("/alpha 17 MB chunked body (no length)", ALPHA, b"x" * (17 * MB), 413, chunked=True),
    ]


def values_and_urls() -> list[Nasty]:
    wizard = [{"role": "wizard", "content": "x"}]
    image_v1 = [
        {"type": "text", "text": "see"},
        {"type": "image_url", "image_url": {"url": "http://10.255.255.1/a.png"}},
    ]
    image_alpha = [{"type": "text", "text": "see"}, {"type": "image", "url": {"uri": "http://10.255.255.1/a.png"}}]
    return [
        post("/v1 role `wizard`", V1, v1_chat(messages=wizard), 400),
        post("/alpha role `wizard`", ALPHA, alpha_chat(messages=wizard), 422),
        post("/v1 no messages", V1, v1_chat(messages=[]), 400),
        post("/v1 unknown model", V1, js({"model": "nope", "messages": USER}), 404),
        post("/alpha unknown model, streamed", ALPHA, js({"model_id": "nope", "messages": USER, "stream": True}), 404),
        get("/v1 GET on a POST route", V1, 405),
        post(
            "/v1 provider-data header not JSON",
            V1,
            v1_chat(),
            400,
            headers={**JSON, "x-llamastack-providerdata": "{nope"},
        ),
        post(
            "/v1 image URL at a private address (the outbound policy refuses it)",
            V1,
            v1_chat(messages=[{"role": "user", "content": image_v1}]),
            400,
        ),
        post(
            "/alpha image URL at a private address (refused)",
            ALPHA,
            alpha_chat(messages=[{"role": "user", "content": image_alpha}]),
            400,
        ),
        post("/alpha memory document URL, port closed", INSERT, document("u1", {"uri": "http://127.0.0.1:9/d"}), 400),
        post(
            "/alpha memory document URL, unreachable host",
            INSERT,
            document("u2", {"uri": "http://unreachable.invalid/d.txt"}),
            400,
        ),
        post("/alpha memory document URL, file://", INSERT, document("u3", {"uri": "file:///etc/passwd"}), 400),
    ]


def nasty_inputs() -> list[Nasty]:
    return [*numbers(), *nesting_and_text(), *bodies(), *values_and_urls()]


def envelope_problem(path: str, status: int, body: bytes) -> str | None:
    """What is wrong with an error answer's body, if anything: each face has one error envelope."""
    if status < 400:
        return None
    try:
        error = json.loads(body).get("error")
    except (ValueError, AttributeError):
        return f"the body is not a JSON object: {body[:200]!r}"
    keys = ("message", "type", "param", "code") if path.startswith("/v1/") else ("type", "message")
    if not isinstance(error, dict) or any(key not in error for key in keys):
        return f"not the {path.split('/')[1]} error envelope: {body[:200]!r}"
    if not isinstance(error["message"], str) or not error["message"]:
        return "the error has no message"
    return None


def _chunks(body: bytes, size: int = MB) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


def send(base_url: str, case: Nasty, auth: dict[str, str]) -> tuple[int | str, bytes]:
    """The status (or the transport error's name) and the body of the answer."""
    # A fresh connection per case: one case's failure must not be blamed on the next.
    with httpx.Client(base_url=base_url, timeout=60) as http:
        try:
            content: Any = _chunks(case.body) if case.chunked and case.body else case.body
            response = http.request(case.method, case.path, content=content, headers={**auth, **case.headers})
        except httpx.HTTPError as e:
            return type(e).__name__, str(e).encode()
    return response.status_code, response.content


def message_of(body: bytes) -> str:
    try:
        error = json.loads(body).get("error")
        if isinstance(error, dict):
            return str(error.get("message"))
    except (ValueError, AttributeError):
        pass
    return " ".join(body[:200].decode(errors="replace").split())
