"""User errors: one line on stderr starting with "Error:", exit status 1, no traceback.

A command wraps its body in `with user_errors():`. Anything raised there that is the user's to
fix (a UserError, or a ConfigError naming the bad YAML key) becomes that one line; anything else
is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import typer


class UserError(Exception):
    """Something the user can fix: a bad argument, a missing file, a failed install."""


def one_line(message: str) -> str:
    return " ".join(part.strip() for part in message.splitlines() if part.strip())


def fail(message: str) -> NoReturn:
    typer.echo(f"Error: {one_line(message)}", err=True)
    raise typer.Exit(1)


def _is_config_error(error: BaseException) -> bool:
    # The spec module (pydantic and the API types) loads only when a command needs it; when it
    # is not loaded, nothing raised can be one of its errors.
    spec = sys.modules.get("llama_stack.distribution.spec")
    return spec is not None and isinstance(error, spec.ConfigError)


@contextmanager
def user_errors() -> Iterator[None]:
    try:
        yield
    except UserError as e:
        fail(str(e))
    except Exception as e:
        if _is_config_error(e):
            fail(str(e))
        raise
