"""Ownership of the resources callers create through the API (agents, sessions, memory banks,
files, vector stores, responses, conversations).

A resource records the name of the API key that created it. Another key gets the resource's
ordinary 404, never a 403, so ids cannot be probed; an `admin: true` key sees everything.
Resources with no owner are shared: those the run.yaml registers, and everything created while
access control is off. With access control off, every check passes, as before ownership existed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

from llama_stack.apis.errors import NotFound
from llama_stack.distribution.request_context import current_caller
from llama_stack.distribution.spec import ANONYMOUS

T = TypeVar("T")


def owner_of_new_resource() -> str | None:
    """The owner to record on a resource the current request creates; None when it is shared."""
    caller = current_caller()
    if caller is None or caller.name == ANONYMOUS:
        return None
    return caller.name


def may_see(owner: str | None) -> bool:
    """Whether the current caller may see (and use) a resource owned by `owner`."""
    caller = current_caller()
    return owner is None or caller is None or caller.admin or caller.name == owner


def check_visible(owner: str | None, not_found: Callable[[], NotFound]) -> None:
    """Raise the resource's own not-found error when the caller may not see it."""
    if not may_see(owner):
        raise not_found()


def visible(items: Iterable[T], owner_of: Callable[[T], str | None]) -> list[T]:
    """The items of a listing the current caller may see."""
    return [item for item in items if may_see(owner_of(item))]
