"""`llama model download` and `llama model list --downloaded`: Hugging Face weights on this machine.

Downloads go through huggingface_hub's `snapshot_download` (its progress bars, its cache layout,
its resumable transfers) into the Hugging Face cache, where the `local` distribution's
transformers provider finds a repo id, or into --local-dir. huggingface_hub is imported only
when a download runs; it reads HF_ENDPOINT and HF_HOME once, at import, so the endpoint, the
cache and the token are read from the environment here, at call time, and passed explicitly.
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from .errors import UserError, user_errors

DEFAULT_ENDPOINT = "https://huggingface.co"
DEFAULT_IGNORE_PATTERNS = "original/*"
CHECKPOINTS_DIR = "~/.llama/checkpoints"
LIST_HINT = "run `llama model list --show-all` for the model names"
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_NETWORK_MODULES = {"httpx", "httpx2", "httpcore", "requests", "urllib3"}


@dataclass(frozen=True)
class Target:
    """What to download: a Hugging Face repo, and the Llama descriptor it is the weights of."""

    repo_id: str
    descriptor: str | None


@dataclass(frozen=True)
class LocalCopy:
    """A model present on this machine."""

    names: str  # Llama descriptor(s), or the folder name under ~/.llama/checkpoints
    repo_id: str
    path: Path
    size: int


# -- what to download -------------------------------------------------------------------------


def resolve_target(model_id: str) -> Target:
    """A Llama descriptor (`Llama3.2-1B-Instruct`) maps to its SKU's Hugging Face repo; an
    `owner/name` id that llama-models does not know is taken as a Hugging Face repo as it is."""
    from llama_models.sku_list import resolve_model

    model = resolve_model(model_id)
    if model is not None:
        if not model.huggingface_repo:
            raise UserError(f"{model.descriptor()} has no Hugging Face repo to download from; {LIST_HINT}")
        return Target(model.huggingface_repo, model.descriptor())
    if _REPO_ID.match(model_id):
        return Target(model_id, None)
    raise UserError(
        f"unknown model '{model_id}': neither a Llama model descriptor nor a Hugging Face repo id (owner/name); "
        f"{LIST_HINT}"
    )


def split_patterns(patterns: str) -> list[str]:
    return [p.strip() for p in patterns.split(",") if p.strip()]


def hf_endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def hf_cache() -> Path:
    """The hub cache huggingface_hub uses by default, from the environment as it is now."""
    from .model import hf_cache_dir

    named = hf_cache_dir()
    if named:
        return Path(named).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser()
    return base / "huggingface" / "hub"


def checkpoints_dir() -> Path:
    return Path(CHECKPOINTS_DIR).expanduser()


# -- errors -----------------------------------------------------------------------------------


def gated_message(repo_id: str, endpoint: str, token_refused: bool) -> str:
    page = f"{endpoint}/{repo_id}"
    if token_refused:
        return (
            f"access to {repo_id} is gated and your token is not on its authorized list: accept the license "
            f"at {page} with the account the token belongs to (approval can take a while), then retry"
        )
    return f"access to {repo_id} is gated: accept the license at {page} and pass --hf-token (or set HF_TOKEN)"


def explain(error: Exception, repo_id: str, endpoint: str) -> str | None:
    """The one line a download failure deserves, or None for an error that is a bug."""
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    status = error.response.status_code if isinstance(error, HfHubHTTPError) and error.response is not None else None
    if isinstance(error, GatedRepoError):  # before RepositoryNotFoundError, its base class
        return gated_message(repo_id, endpoint, token_refused=status == 403)  # 401: no token, or a bad one
    if isinstance(error, RepositoryNotFoundError):
        return (
            f"{repo_id} was not found on {endpoint} (check the id; if it is private or gated, "
            f"pass --hf-token with a token that can read it); {LIST_HINT}"
        )
    if isinstance(error, RevisionNotFoundError):
        return f"{repo_id} has no 'main' revision on {endpoint}"
    if isinstance(error, OfflineModeIsEnabled) or isinstance(error.__cause__, OfflineModeIsEnabled):
        return f"cannot download {repo_id}: Hugging Face offline mode is on (unset HF_HUB_OFFLINE)"
    if isinstance(error, LocalEntryNotFoundError) or type(error).__module__.split(".")[0] in _NETWORK_MODULES:
        return (
            f"could not reach {endpoint} to download {repo_id}: check the network connection "
            "(and HF_ENDPOINT or the proxy settings), then retry; finished files are kept"
        )
    if isinstance(error, HfHubHTTPError):
        return f"downloading {repo_id} from {endpoint} failed with HTTP {status}: {error}"
    if isinstance(error, OSError):  # a full disk, an unwritable folder, a truncated transfer
        return f"downloading {repo_id} failed: {error}"
    return None


# -- download ---------------------------------------------------------------------------------


def snapshot(target: Target, local_dir: Path | None, ignore: list[str], token: str | None) -> Path:
    try:
        from huggingface_hub import HfApi, get_token, snapshot_download
    except ImportError as e:
        raise UserError("downloads need huggingface_hub: pip install huggingface_hub") from e

    endpoint = hf_endpoint()
    try:
        # Asked first, so that a missing repo or an unreachable Hub fails before any progress bar,
        # and is not masked by snapshot_download's fallback to files already on disk.
        info = HfApi(endpoint=endpoint, token=token).model_info(target.repo_id)
        if info.gated and not (token or get_token()):
            raise UserError(gated_message(target.repo_id, endpoint, token_refused=False))
        dest = local_dir if local_dir is not None else hf_cache()
        typer.echo(f"Downloading {target.repo_id} from {endpoint} to {dest}", err=True)
        path = snapshot_download(
            target.repo_id,
            cache_dir=hf_cache(),
            local_dir=local_dir,
            ignore_patterns=ignore or None,
            token=token,
            endpoint=endpoint,
        )
    except UserError:
        raise
    except Exception as e:
        message = explain(e, target.repo_id, endpoint)
        if message is None:
            raise
        raise UserError(message) from e
    return Path(path)


def files_under(folder: Path) -> list[Path]:
    """The files of a checkpoint, skipping huggingface_hub's bookkeeping folder (.cache)."""
    found: list[Path] = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if d != ".cache"]
        found.extend(Path(root) / name for name in names)
    return found


def total_size(files: list[Path]) -> int:
    return sum(f.stat().st_size for f in files if f.exists())  # stat follows the cache's symlinks


def human_size(size: int) -> str:
    if size < 1000:
        return f"{size} B"
    units, value, i = ("KB", "MB", "GB", "TB"), size / 1000, 0
    while value >= 1000 and i < len(units) - 1:
        value, i = value / 1000, i + 1
    return f"{value:.1f} {units[i]}"


def report(target: Target, path: Path, local_dir: Path | None) -> None:
    files = files_under(path)
    name = f"{target.repo_id} ({target.descriptor})" if target.descriptor else target.repo_id
    typer.echo(f"Downloaded {name}: {len(files)} files, {human_size(total_size(files))}")
    typer.echo(f"  in {path}")
    if not (path / "config.json").is_file():
        typer.echo(
            "Warning: no config.json, so this is not a Hugging Face transformers checkpoint "
            "(did --ignore-patterns skip it?); the `local` distribution cannot load it.",
            err=True,
        )
    # In the cache the repo id finds the weights; a folder elsewhere is named by its path.
    checkpoint = target.repo_id if local_dir is None else str(path)
    env = f"--env INFERENCE_MODEL={shlex.quote(target.repo_id)} --env INFERENCE_CHECKPOINT={shlex.quote(checkpoint)}"
    typer.echo(f"Register it under the model id {target.repo_id} (provider_model_id {checkpoint}); to serve it:")
    typer.echo(f"  llama stack run local {env}")


def download(
    model_id: Annotated[
        str,
        typer.Option(
            "--model-id",
            help="a Llama model descriptor (Llama3.2-1B-Instruct, Llama-Guard-3-1B) or a Hugging Face repo id",
            show_default=False,
        ),
    ],
    hf_token: Annotated[
        str | None,
        typer.Option(
            "--hf-token",
            help="Hugging Face access token, needed for gated repos such as meta-llama's "
            "(default: $HF_TOKEN, then the token `hf auth login` saved)",
            show_default=False,
        ),
    ] = None,
    ignore_patterns: Annotated[
        str,
        typer.Option(
            "--ignore-patterns",
            help="comma-separated glob patterns of repo files to skip. The default, original/*, skips Meta's "
            "original-format weights (consolidated.*.pth), which transformers does not load; "
            "pass '' to download every file",
        ),
    ] = DEFAULT_IGNORE_PATTERNS,
    local_dir: Annotated[
        Path | None,
        typer.Option(
            "--local-dir",
            help="download into this folder instead of the Hugging Face cache ($HF_HUB_CACHE, $HF_HOME/hub)",
            show_default=False,
        ),
    ] = None,
    source: Annotated[
        str, typer.Option("--source", help="where to download from; only huggingface is supported")
    ] = "huggingface",
) -> None:
    """Download a model's Hugging Face weights (config.json, *.safetensors) with a progress bar.

    They go to the Hugging Face cache, where the `local` distribution finds them by repo id, or to --local-dir.

    Meta's original-format weights (original/*) are skipped: transformers does not load them.
    """
    with user_errors():
        if source != "huggingface":
            raise UserError(f"unsupported --source '{source}': only huggingface is supported")
        target = resolve_target(model_id)
        token = hf_token or os.environ.get("HF_TOKEN") or None  # None: huggingface_hub's saved token
        path = snapshot(target, local_dir, split_patterns(ignore_patterns), token)
        report(target, path, local_dir)


# -- what is here -----------------------------------------------------------------------------


def cached_snapshot(cache: Path, repo_id: str) -> Path | None:
    """The snapshot of `repo_id` in the hub cache (main's, else the newest), if it holds files."""
    snapshots = cache / f"models--{repo_id.replace('/', '--')}" / "snapshots"
    if not snapshots.is_dir():
        return None
    ref = snapshots.parent / "refs" / "main"
    chosen = snapshots / ref.read_text().strip() if ref.is_file() else None
    if chosen is None or not chosen.is_dir():
        candidates = sorted((p for p in snapshots.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
        chosen = candidates[-1] if candidates else None
    return chosen if chosen is not None and files_under(chosen) else None


def find_downloaded(cache: Path, checkpoints: Path) -> list[LocalCopy]:
    """Catalogue models in the hub cache or in checkpoints/<descriptor>, and any other checkpoint folder."""
    from llama_models.sku_list import all_registered_models

    found: dict[Path, LocalCopy] = {}

    def add(name: str, repo_id: str, path: Path, size: int) -> None:
        if path in found:  # several SKUs share a repo (e.g. 405B's bf16-mp8 and bf16-mp16)
            old = found[path]
            found[path] = LocalCopy(f"{old.names}, {name}", old.repo_id, path, old.size)
        else:
            found[path] = LocalCopy(name, repo_id, path, size)

    known: set[str] = set()
    for model in all_registered_models():
        descriptor, repo = model.descriptor(), model.huggingface_repo or ""
        known.add(descriptor)
        snap = cached_snapshot(cache, repo) if repo else None
        if snap is not None:
            blobs = snap.parent.parent / "blobs"
            add(descriptor, repo, snap, total_size(files_under(blobs if blobs.is_dir() else snap)))
        folder = checkpoints / descriptor
        if folder.is_dir() and (files := files_under(folder)):
            add(descriptor, repo, folder, total_size(files))
    if checkpoints.is_dir():
        for folder in sorted(p for p in checkpoints.iterdir() if p.is_dir() and p.name not in known):
            if files := files_under(folder):
                add(folder.name, "", folder, total_size(files))
    return list(found.values())


def print_downloaded() -> None:
    """One row a model; paths are printed whole, never wrapped, so they can be copied."""
    cache, checkpoints = hf_cache(), checkpoints_dir()
    copies = find_downloaded(cache, checkpoints)
    if not copies:
        typer.echo(
            f"No models downloaded here (looked in {cache} and {checkpoints}); "
            "get one with `llama model download --model-id Llama3.2-1B-Instruct`."
        )
        return
    rows = [("Model descriptor", "Hugging Face repo", "Size", "Path")]
    rows += [(c.names, c.repo_id or "-", human_size(c.size), str(c.path)) for c in copies]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        typer.echo("  ".join([*(cell.ljust(width) for cell, width in zip(row, widths, strict=False)), row[3]]))
