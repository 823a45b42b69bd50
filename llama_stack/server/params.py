"""Request parsing shared by both faces."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from pydantic_core import to_json
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


def json_response(value: Any, status_code: int = 200) -> Response:
    """Serialise pydantic models (or lists/dicts of them) straight to bytes, skipping
    FastAPI's jsonable_encoder pass."""
    return Response(to_json(value), status_code=status_code, media_type="application/json")
