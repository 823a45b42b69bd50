"""Request parsing shared by both faces."""

from __future__ import annotations

import inspect
import json
import typing
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from llama_stack.apis.common import dump_json
from llama_stack.apis.errors import InvalidRequest

M = TypeVar("M", bound=BaseModel)


async def query_and_body(request: Request, model: type[M], lists: tuple[str, ...] = ()) -> M:
    """Accept parameters from the query string, the JSON body, or both (the body wins).

    The 0.0.63 client sends some ids as query parameters where its own server wanted a body;
    we accept either."""
    raw = await request.body()
    try:
        data: Any = json.loads(raw) if raw.strip() else {}
    except (ValueError, RecursionError) as e:  # JSONDecodeError, UnicodeDecodeError, nesting too deep
        raise InvalidRequest("request body is not valid JSON") from e
    if not isinstance(data, dict):
        raise InvalidRequest("request body must be a JSON object")
    query: dict[str, Any] = {
        key: request.query_params.getlist(key) if key in lists else value for key, value in request.query_params.items()
    }
    try:
        return model.model_validate({**query, **data})
    except ValidationError as e:
        raise RequestValidationError(e.errors()) from e


def query_params(request: Request, model: type[M]) -> M:
    """The query string as `model`; a bad value is a 400 naming the parameter."""
    try:
        return model.model_validate(dict(request.query_params))
    except ValidationError as e:
        problem = e.errors()[0]
        raise InvalidRequest(f"{'.'.join(str(p) for p in problem['loc'])}: {problem['msg']}") from e


def json_response(value: Any, status_code: int = 200) -> Response:
    """A JSON response without FastAPI's jsonable_encoder pass."""
    return Response(dump_json(value), status_code=status_code, media_type="application/json")


JSON_TYPES = (b"application/json", b"application/json; charset=utf-8")


class JsonBodyRoute(APIRoute):
    """A route whose endpoint takes only string path parameters and one JSON body model reads
    its body with pydantic's JSON parser in one pass and calls the endpoint directly: FastAPI's
    per-request dependency solving, its two exit stacks and its json.loads-then-validate cost about
    a sixth of the gateway's CPU per request. FastAPI still builds the route's OpenAPI schema, and
    every request this fast path does not take as it is (another content type, a body that does
    not validate) goes to FastAPI's own handler, so errors keep their exact shape."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        model = self._lone_body_model()
        if model is not None:
            self.app = self._fast_app(model, self.app)

    def _lone_body_model(self) -> type[BaseModel] | None:
        dependant = self.dependant
        if (
            not inspect.iscoroutinefunction(self.endpoint)
            or len(dependant.body_params) != 1
            or dependant.query_params
            or dependant.header_params
            or dependant.cookie_params
            or dependant.dependencies
            or dependant.request_param_name
            # Path parameters with constraints, and an embedded body, are FastAPI's to check.
            or any(p.field_info.annotation is not str or p.field_info.metadata for p in dependant.path_params)
            or getattr(dependant.body_params[0].field_info, "embed", False)
            or not _returns_response(self.endpoint)
        ):
            return None
        annotation = dependant.body_params[0].field_info.annotation
        return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None

    def _fast_app(self, model: type[BaseModel], fastapi_app: ASGIApp) -> ASGIApp:
        endpoint: Callable[..., Awaitable[Response]] = self.endpoint
        body_name = self.dependant.body_params[0].name
        path_names = [p.name for p in self.dependant.path_params]

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            content_type = next((v for k, v in scope["headers"] if k == b"content-type"), None)
            if content_type is None or content_type.lower() not in JSON_TYPES:
                await fastapi_app(scope, receive, send)
                return
            try:
                raw = await Request(scope, receive).body()
            except ClientDisconnect:
                return  # the client left, or RequestBodyGuard has answered a bad body
            try:
                body = model.model_validate_json(raw)
            except ValidationError:
                await fastapi_app(scope, replay(raw, receive), send)
                return
            path_params = scope["path_params"]
            response = await endpoint(**{name: path_params[name] for name in path_names}, **{body_name: body})
            await response(scope, receive, send)

        return app


def _returns_response(endpoint: Callable[..., Any]) -> bool:
    try:
        returned = typing.get_type_hints(endpoint).get("return")
    except (NameError, TypeError):  # an annotation naming what its module cannot see: FastAPI's call
        return False
    return isinstance(returned, type) and issubclass(returned, Response)


def replay(body: bytes, receive: Receive) -> Receive:
    """`receive` for an app that reads a request body already read once."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replayed
