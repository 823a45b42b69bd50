"""Request parsing shared by both faces."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticSerializationError, to_json, to_jsonable_python
from starlette.responses import Response

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


def dump_json(value: Any, exclude_none: bool = False) -> bytes:
    """Pydantic models (or lists/dicts of them) straight to JSON bytes. Text a client sent can hold
    lone surrogates (a JSON escape like \\ud800 allows them) that UTF-8 cannot encode; such values
    go out escaped, as JSON permits, instead of failing."""
    try:
        return to_json(value, exclude_none=exclude_none)
    except PydanticSerializationError:
        return json.dumps(to_jsonable_python(value, exclude_none=exclude_none), separators=(",", ":")).encode()


def json_response(value: Any, status_code: int = 200) -> Response:
    """A JSON response without FastAPI's jsonable_encoder pass."""
    return Response(dump_json(value), status_code=status_code, media_type="application/json")
