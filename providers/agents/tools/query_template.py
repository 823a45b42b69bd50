"""The `llm` query generator's template: Jinja, as in v0.0.63, but the template is a tenant's input
and runs in the server, so it runs sandboxed and bounded.

The sandbox (jinja2.sandbox) keeps a template off Python's internals. On top of it, a template may
not call anything (methods such as str.ljust could allocate without bound), may use only filters
that cannot grow their input much, may not nest loops, recurse or define macros, and may not
repeat a string or list (`*`) or raise to a power (`**`) beyond small bounds. What it renders is
cut at MAX_PROMPT_CHARS.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from jinja2 import TemplateSyntaxError, nodes
from jinja2.exceptions import SecurityError, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from llama_stack.apis.errors import InvalidRequest

MAX_PROMPT_CHARS = 32_000
MAX_REPEAT_CHARS = 10_000
MAX_EXPONENT = 64
SAFE_FILTERS = frozenset(
    {
        "capitalize", "count", "default", "d", "e", "escape", "first", "join", "last", "length", "list",
        "lower", "map", "reject", "rejectattr", "reverse", "select", "selectattr", "string", "striptags",
        "title", "tojson", "trim", "truncate", "upper",
    }
)  # fmt: skip


class _QueryTemplates(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**"})

    def call(self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        raise SecurityError("query templates may not call functions or methods; use filters")

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int | float) and abs(right) > MAX_EXPONENT:
            raise SecurityError(f"exponents above {MAX_EXPONENT} are not allowed in query templates")
        if operator == "*":
            for sequence, times in ((left, right), (right, left)):
                if isinstance(sequence, str | list | tuple) and isinstance(times, int):
                    if len(sequence) * times > MAX_REPEAT_CHARS:
                        raise SecurityError("query templates may not repeat a sequence that far")
        return super().call_binop(context, operator, left, right)


@cache
def _environment() -> _QueryTemplates:
    environment = _QueryTemplates(autoescape=False)
    environment.globals.clear()  # no range, lipsum, cycler...: nothing a template needs to build text
    environment.filters = {name: f for name, f in environment.filters.items() if name in SAFE_FILTERS}
    return environment


def check_template(template: str) -> str | None:
    """Why `template` cannot be a query template, or None when it can."""
    try:
        tree = _environment().parse(template)
    except TemplateSyntaxError as e:
        return f"not a valid Jinja template: {e.message} (line {e.lineno})"
    for node in tree.find_all((nodes.Macro, nodes.CallBlock, nodes.FilterBlock, nodes.Extends, nodes.Include)):
        return f"'{type(node).__name__.lower()}' is not allowed in a query template"
    for loop in tree.find_all(nodes.For):
        if loop.recursive or any(True for _ in loop.find_all(nodes.For)):
            return "loops may not be nested or recursive in a query template"
    for used in tree.find_all(nodes.Filter):
        if used.name not in SAFE_FILTERS:
            return f"the filter '{used.name}' is not allowed (allowed: {', '.join(sorted(SAFE_FILTERS))})"
    return None


def render(template: str, messages: list[dict[str, Any]]) -> str:
    """The prompt of the query generator model: `template` rendered with `messages`."""
    problem = check_template(template)
    if problem is not None:
        raise InvalidRequest(f"query_generator_config.template: {problem}")
    try:
        pieces: list[str] = []
        size = 0
        for piece in _environment().from_string(template).generate(messages=messages):
            pieces.append(piece)
            size += len(piece)
            if size >= MAX_PROMPT_CHARS:
                break
    except TemplateError as e:
        raise InvalidRequest(f"query_generator_config.template failed to render: {e}") from e
    return "".join(pieces)[:MAX_PROMPT_CHARS]
