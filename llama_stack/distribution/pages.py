"""OpenAI's cursor pagination (`after`, `before`, `limit`) over a listing already in its order."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from llama_stack.apis.errors import InvalidRequest

T = TypeVar("T")


def cursor_page(
    items: list[T], id_of: Callable[[T], str], limit: int, after: str | None = None, before: str | None = None
) -> tuple[list[T], bool]:
    """The page of `items` after `after` and before `before` (ids of items of this listing), and
    whether more items follow it."""
    ids = [id_of(item) for item in items]
    for name, cursor in (("after", after), ("before", before)):
        if cursor is not None and cursor not in ids:
            raise InvalidRequest(f"{name}: '{cursor}' is not an id of this listing")
    start = ids.index(after) + 1 if after is not None else 0
    end = ids.index(before) if before is not None else len(items)
    window = items[start:end]
    return window[:limit], len(window) > limit
