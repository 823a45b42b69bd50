"""OpenAI's vector store filters (comparison and compound) over a chunk's attributes, and the
part of a filter a memory bank can apply itself (key == value pairs)."""

from __future__ import annotations

from typing import Any

from llama_stack.apis.vector_stores import ComparisonFilter, Filter


def matches_filter(attributes: dict[str, Any], condition: Filter) -> bool:
    if not isinstance(condition, ComparisonFilter):
        results = (matches_filter(attributes, inner) for inner in condition.filters)
        return all(results) if condition.type == "and" else any(results)
    if condition.key not in attributes:
        return False
    actual, wanted = attributes[condition.key], condition.value
    if condition.type in ("in", "nin"):
        members = wanted if isinstance(wanted, list) else [wanted]
        return (actual in members) == (condition.type == "in")
    if condition.type in ("eq", "ne"):
        return bool(actual == wanted) == (condition.type == "eq")
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (actual, wanted))
    if not numbers and not (isinstance(actual, str) and isinstance(wanted, str)):
        return False  # no order between a string and a number, or between booleans
    order: int = (actual > wanted) - (actual < wanted)
    return {"gt": order > 0, "gte": order >= 0, "lt": order < 0, "lte": order <= 0}[condition.type]


def equalities_of(condition: Filter | None) -> dict[str, Any] | None:
    """The filter as key == value pairs a bank applies itself, or None when it is more than that."""
    if condition is None:
        return {}
    if isinstance(condition, ComparisonFilter):
        scalar = not isinstance(condition.value, list)
        return {condition.key: condition.value} if condition.type == "eq" and scalar else None
    if condition.type != "and":
        return None
    merged: dict[str, Any] = {}
    for inner in condition.filters:
        pairs = equalities_of(inner)
        if pairs is None or any(key in merged and merged[key] != value for key, value in pairs.items()):
            return None
        merged.update(pairs)
    return merged
