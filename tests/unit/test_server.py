"""The /alpha face over HTTP: status codes, error bodies, SSE framing, limits and inspection."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import fastapi
import httpx
import pytest
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.responses import Response
from starlette.routing import Match

from llama_stack.distribution.resolver import build_stack
from llama_stack.distribution.spec import parse_run_config
from llama_stack.server.app import create_app
from llama_stack.server.params import JsonBodyRoute, json_response


class Item(BaseModel):
    n: int


def config(tmp_path: Path, **server: Any) -> dict[str, Any]:
    return {
        "version": 2,
        "image_name": "test",
        "providers": {"inference": [{"provider_id": "scripted", "provider_type": "test::scripted"}]},
        "metadata_store": {"type": "sqlite", "db_path": str(tmp_path / "registry.db")},
        "models": [{"model_id": "echo"}],
        "server": server,
    }


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    stack = await build_stack(parse_run_config(config(tmp_path, max_request_bytes=4096), env={}))
    transport = httpx.ASGITransport(app=create_app(stack))
    async with httpx.AsyncClient(transport=transport, base_url="http://stack") as http:
        yield http
    await stack.shutdown()


def chat_body(text: str, **extra: Any) -> dict[str, Any]:
    return {"model_id": "echo", "messages": [{"role": "user", "content": text}], **extra}


def sse_events(body: str) -> list[dict[str, Any]]:
    frames = [frame for frame in body.split("\n\n") if frame]
    assert all(frame.startswith("data: ") for frame in frames), frames
    return [json.loads(frame.removeprefix("data: ")) for frame in frames]


async def test_chat_completion_returns_the_message(client: httpx.AsyncClient) -> None:
    response = await client.post("/alpha/inference/chat-completion", json=chat_body("hello there"))
    assert response.status_code == 200
    message = response.json()["completion_message"]
    assert message == {
        "role": "assistant",
        "content": "echo: hello there",
        "stop_reason": "end_of_turn",
        "tool_calls": [],
    }


async def test_chat_stream_is_sse_without_done(client: httpx.AsyncClient) -> None:
    response = await client.post("/alpha/inference/chat-completion", json=chat_body("a b", stream=True))
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [e["event"] for e in sse_events(response.text)]
    assert [e["event_type"] for e in events] == ["start", "progress", "progress", "progress", "complete"]
    assert "".join(e["delta"] for e in events) == "echo: a b"
    assert events[-1]["stop_reason"] == "end_of_turn"
    assert "[DONE]" not in response.text


async def test_completion_stream_and_not(client: httpx.AsyncClient) -> None:
    plain = await client.post("/alpha/inference/completion", json={"model_id": "echo", "content": "x y"})
    assert plain.json() | {"usage": None} == {
        "content": "echo: x y",
        "stop_reason": "end_of_turn",
        "logprobs": None,
        "usage": None,
    }
    streamed = await client.post(
        "/alpha/inference/completion", json={"model_id": "echo", "content": "x y", "stream": True}
    )
    chunks = sse_events(streamed.text)
    assert "".join(c["delta"] for c in chunks) == "echo: x y"
    assert chunks[-1]["stop_reason"] == "end_of_turn"


async def test_unknown_model_is_404_naming_it_and_not_retried(client: httpx.AsyncClient) -> None:
    for stream in (False, True):
        response = await client.post(
            "/alpha/inference/chat-completion", json={**chat_body("x", stream=stream), "model_id": "gpt-9"}
        )
        assert response.status_code == 404
        assert response.headers["x-should-retry"] == "false"
        error = response.json()["error"]
        assert error["type"] == "not_found"
        assert "'gpt-9' is not registered" in error["message"] and "echo" in error["message"]


async def test_failure_before_the_first_token_keeps_its_status(client: httpx.AsyncClient) -> None:
    response = await client.post("/alpha/inference/chat-completion", json=chat_body("fail-now", stream=True))
    assert response.status_code == 502
    assert response.headers["x-should-retry"] == "true"
    assert response.json()["error"]["message"] == "scripted backend refused the request"


async def test_failure_mid_stream_is_an_error_event(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/alpha/inference/chat-completion", json=chat_body("fail-midway and more", stream=True)
    )
    assert response.status_code == 200
    events = sse_events(response.text)
    assert events[-1] == {"error": {"type": "upstream_error", "message": "scripted backend died mid-stream"}}
    assert "".join(e["event"]["delta"] for e in events[:-1]) == "echo: fail-midway"


async def test_invalid_body_names_the_field(client: httpx.AsyncClient) -> None:
    response = await client.post("/alpha/inference/chat-completion", json={"model_id": "echo"})
    assert response.status_code == 422
    assert response.headers["x-should-retry"] == "false"
    body = response.json()["error"]
    assert body["type"] == "validation_error"
    assert body["details"][0]["field"] == "messages"

    bad_role = await client.post(
        "/alpha/inference/chat-completion", json={"model_id": "echo", "messages": [{"role": "robot", "content": "x"}]}
    )
    assert bad_role.status_code == 422 and "messages.0" in bad_role.json()["error"]["message"]

    bad_sampling = await client.post(
        "/alpha/inference/chat-completion", json=chat_body("x", sampling_params={"temperature": -1})
    )
    assert bad_sampling.status_code == 422 and "temperature" in bad_sampling.json()["error"]["message"]


async def test_a_body_is_read_alike_whatever_json_content_type_it_names(client: httpx.AsyncClient) -> None:
    # application/json takes the one-pass parse (server/params.py JsonBodyRoute); other spellings
    # and types go through FastAPI's handler: the answers and the errors must not tell them apart.
    good = json.dumps(chat_body("same")).encode()
    missing = json.dumps({"model_id": "echo"}).encode()
    answers, errors = [], []
    for content_type in ("application/json", "application/json; charset=utf-8", "application/vnd.api+json"):
        headers = {"content-type": content_type}
        answers.append(await client.post("/alpha/inference/chat-completion", content=good, headers=headers))
        errors.append(await client.post("/alpha/inference/chat-completion", content=missing, headers=headers))
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert len({a.text for a in answers}) == 1 and "echo: same" in answers[0].text
    assert [e.status_code for e in errors] == [422, 422, 422] and len({e.text for e in errors}) == 1
    plain = await client.post("/alpha/inference/chat-completion", content=good, headers={"content-type": "text/plain"})
    assert plain.status_code == 422  # not JSON by its type, as FastAPI has it


async def test_text_with_a_lone_surrogate_is_400_but_pairs_pass(client: httpx.AsyncClient) -> None:
    def body(text: bytes) -> bytes:
        return b'{"model_id": "echo", "messages": [{"role": "user", "content": "' + text + b'"}]}'

    headers = {"content-type": "application/json"}
    for lone in (b"a\\ud800b", b"x\\udc00", b"\\ud800\\u0041"):
        response = await client.post("/alpha/inference/chat-completion", content=body(lone), headers=headers)
        assert response.status_code == 400, lone
        assert "lone UTF-16 surrogate" in response.json()["error"]["message"]
    paired = await client.post("/alpha/inference/chat-completion", content=body(b"\\ud83d\\ude00"), headers=headers)
    assert paired.status_code == 200
    assert paired.json()["completion_message"]["content"] == "echo: \U0001f600"


async def test_malformed_json_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/alpha/inference/chat-completion", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "request body is not valid JSON"


async def test_body_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    response = await client.post("/alpha/inference/chat-completion", json=chat_body("x" * 5000))
    assert response.status_code == 413
    assert "4096 bytes" in response.json()["error"]["message"]

    async def chunked() -> AsyncIterator[bytes]:  # no content-length: the limit counts what arrives
        for _ in range(10):
            yield b"x" * 1000

    response = await client.post("/alpha/inference/chat-completion", content=chunked())
    assert response.status_code == 413


async def test_apis_without_provider_answer_501_naming_what_to_add(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/alpha/agents/create", json={"agent_config": {"model": "echo", "instructions": "be nice"}}
    )
    assert response.status_code == 501
    assert response.headers["x-should-retry"] == "false"
    assert "add a provider under providers.agents" in response.json()["error"]["message"]

    response = await client.post(
        "/alpha/safety/run-shield", json={"shield_id": "s", "messages": [{"role": "user", "content": "x"}]}
    )
    assert response.status_code == 501 and "providers.safety" in response.json()["error"]["message"]

    response = await client.post("/alpha/eval/run-eval", json={})
    assert response.status_code == 501 and "eval API is not part of this stack" in response.text


async def test_provider_data_header_must_be_a_json_object(client: httpx.AsyncClient) -> None:
    headers = {"X-LlamaStack-ProviderData": "not json"}
    response = await client.post("/alpha/inference/chat-completion", json=chat_body("x"), headers=headers)
    assert response.status_code == 400
    assert "X-LlamaStack-ProviderData header must be a JSON object" in response.json()["error"]["message"]
    headers = {"X-LlamaStack-ProviderData": '{"reply_prefix": "per-request: "}'}
    for stream in (False, True):
        response = await client.post(
            "/alpha/inference/chat-completion", json=chat_body("x", stream=stream), headers=headers
        )
        if stream:
            text = "".join(event["event"]["delta"] for event in sse_events(response.text))
        else:
            text = response.json()["completion_message"]["content"]
        assert text == "per-request: x"


async def test_unknown_route_is_404_and_wrong_method_405(client: httpx.AsyncClient) -> None:
    assert (await client.get("/alpha/nothing/here")).status_code == 404
    wrong = await client.get("/alpha/inference/chat-completion")
    assert wrong.status_code == 405 and wrong.json()["error"]["type"] == "method_not_allowed"


async def test_every_route_is_reached_by_its_own_paths(tmp_path: Path) -> None:
    # The app tries its routes hottest first (server/app.py dispatch_order); that must never hand a
    # request to another route than the one whose path it is.
    stack = await build_stack(parse_run_config(config(tmp_path), env={}))
    routes = create_app(stack).router.routes
    api_routes = [route for route in routes if isinstance(route, APIRoute)]
    assert len(api_routes) > 60
    for route in api_routes:
        path = re.sub(r"\{[^}]+\}", "some-id", route.path)
        for method in route.methods or ():
            scope = {"type": "http", "method": method, "path": path, "root_path": ""}
            reached = next(r for r in routes if r.matches(scope)[0] == Match.FULL)
            assert reached is route, f"{method} {path} reaches {getattr(reached, 'path', reached)}"
    await stack.shutdown()


async def test_models_registry_routes(client: httpx.AsyncClient) -> None:
    listed = (await client.get("/alpha/models/list")).json()
    assert [m["identifier"] for m in listed] == ["echo"]
    assert listed[0]["type"] == "model" and listed[0]["model_type"] == "llm"

    registered = await client.post("/alpha/models/register", json={"model_id": "second"})
    assert registered.json()["provider_id"] == "scripted"
    assert (await client.get("/alpha/models/get", params={"identifier": "second"})).json()["identifier"] == "second"
    assert (await client.post("/alpha/models/unregister", json={"model_id": "second"})).status_code == 200
    missing = await client.get("/alpha/models/get", params={"identifier": "second"})
    assert missing.status_code == 404


async def test_inspect_routes(client: httpx.AsyncClient) -> None:
    assert (await client.get("/alpha/health")).json() == {"status": "OK"}
    providers = (await client.get("/alpha/providers/list")).json()
    assert providers == {"inference": [{"provider_id": "scripted", "provider_type": "test::scripted"}]}
    routes = (await client.get("/alpha/routes/list")).json()
    chat = [r for r in routes["inference"] if r["route"] == "/alpha/inference/chat-completion"]
    assert chat == [
        {"route": "/alpha/inference/chat-completion", "method": "POST", "provider_types": ["test::scripted"]}
    ]
    assert {"agents", "safety", "memory", "models", "shields", "memory_banks", "inspect"} <= set(routes)


async def test_every_operation_in_the_openapi_document_has_its_own_id(client: httpx.AsyncClient) -> None:
    # Client generators name a method after its operationId: two operations with one id collide.
    paths = (await client.get("/openapi.json")).json()["paths"]
    ids = [operation["operationId"] for methods in paths.values() for operation in methods.values()]
    assert len(ids) == len(set(ids)) and "/alpha/agents/session/get" in paths
    assert set(paths["/alpha/agents/session/get"]) == {"get", "post"}


async def test_routes_the_one_pass_parse_cannot_serve_keep_fastapis_checks() -> None:
    # A constrained path parameter and an embedded body are FastAPI's to read (JsonBodyRoute).
    router = fastapi.APIRouter(route_class=JsonBodyRoute)

    @router.post("/items/{name}")
    async def named(item: Item, name: str = fastapi.Path(pattern="^[a-z]+$")) -> Response:
        return json_response({"name": name, "n": item.n})

    @router.post("/wrapped")
    async def wrapped(item: Item = fastapi.Body(embed=True)) -> Response:
        return json_response({"n": item.n})

    app = fastapi.FastAPI()
    app.router.routes.extend(router.routes)  # as create_app places the faces' routes
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app") as http:
        assert (await http.post("/items/abc", json={"n": 1})).json() == {"name": "abc", "n": 1}
        assert (await http.post("/items/ABC", json={"n": 1})).status_code == 422
        assert (await http.post("/wrapped", json={"item": {"n": 2}})).json() == {"n": 2}
        assert (await http.post("/wrapped", json={"n": 2})).status_code == 422
