"""What a resource method means, said once for both clients.

A resource method builds a `Call` (HTTP method, route, query, body, and how to parse the answer);
the client it is bound to runs it: the sync client returns the result, the async client an
awaitable of it. `endpoint` turns a call builder into such a method, typed for whichever client
the resource hangs off, so no API is written twice. Methods whose `stream` flag changes the
result type (chat_completion, completion, turn.create) overload on the resource's client type."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Concatenate, Generic, ParamSpec, Protocol, TypeVar, overload

from pydantic import BaseModel, TypeAdapter

from .streaming import AsyncStream, Stream

T = TypeVar("T")
P = ParamSpec("P")
C = TypeVar("C", covariant=True)


@dataclass(frozen=True)
class Call(Generic[T]):
    method: str
    path: str
    parse: Callable[[Any], T]
    query: Mapping[str, Any] | None = None
    body: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class StreamCall(Generic[T]):
    """A call answered with server-sent events; `parse` turns each event into a chunk."""

    method: str
    path: str
    parse: Callable[[Any], T]
    query: Mapping[str, Any] | None = None
    body: Mapping[str, Any] | None = None
    done_marker: str | None = None


class SyncRunner(Protocol):
    def _call(self, call: Call[T]) -> T: ...
    def _stream(self, call: StreamCall[T]) -> Stream[T]: ...


class AsyncRunner(Protocol):
    def _call(self, call: Call[T]) -> Awaitable[T]: ...
    def _stream(self, call: StreamCall[T]) -> Awaitable[AsyncStream[T]]: ...


class Resource(Generic[C]):
    """A group of routes (`client.models`, `client.inference`...). `C` is the client type and
    decides, for typing only, whether methods return results or awaitables."""

    def __init__(self, client: C) -> None:
        self._client: Any = client


class endpoint(Generic[P, T]):
    """Decorates a call builder into a resource method that runs the call."""

    def __init__(self, build: Callable[Concatenate[Any, P], Call[T]]) -> None:
        self.build = build
        self.__doc__ = build.__doc__

    @overload
    def __get__(self, resource: Resource[SyncRunner], owner: Any) -> Callable[P, T]: ...
    @overload
    def __get__(self, resource: Resource[AsyncRunner], owner: Any) -> Callable[P, Awaitable[T]]: ...
    def __get__(self, resource: Any, owner: Any) -> Any:
        build = self.build

        def method(*args: Any, **kwargs: Any) -> Any:
            return resource._client._call(build(resource, *args, **kwargs))

        method.__doc__ = build.__doc__
        return method


def parser(kind: Any) -> Callable[[Any], Any]:
    """A function validating parsed JSON into `kind` (a pydantic model, a list of them, a union)."""
    return TypeAdapter(kind).validate_python


def parse_none(_: Any) -> None:
    return None


def jsonable(value: Any) -> Any:
    """Request values as JSON: pydantic models (the wire types) and plain dicts mix freely."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_none=True)
    if isinstance(value, Mapping):
        return {key: jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    return value


def body(**fields: Any) -> dict[str, Any]:
    """A JSON body of the given fields, leaving out those not given (None)."""
    return {key: jsonable(value) for key, value in fields.items() if value is not None}
