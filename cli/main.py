"""The `llama` command: `llama stack ...` and `llama model ...`.

Only typer is imported here; each command imports what it needs when it runs, so `llama --help`
is fast and never imports torch or transformers.
"""

from __future__ import annotations

import typer

from . import model, stack

app = typer.Typer(
    name="llama",
    no_args_is_help=True,
    help="Build and run Llama Stack distributions, and look up Llama models.",
    pretty_exceptions_show_locals=False,
)
app.add_typer(stack.app, name="stack")
app.add_typer(model.app, name="model")


if __name__ == "__main__":
    app()
