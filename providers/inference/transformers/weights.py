"""Find a model's weights on this machine and load them, or say exactly how to get them.

Nothing here downloads: a server start must never hang on the network or pull gigabytes
unasked. The error for missing weights lists every place searched and the commands that fetch
the weights, so the operator can fix it in one step.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llama_stack.apis.errors import InvalidRequest, ProviderError
from llama_stack.models.tiny import TINY_MODEL_ID, ensure_tiny_model

from .config import TransformersInferenceConfig

log = logging.getLogger(__name__)

EXAMPLE_HF_REPO = "meta-llama/Llama-3.2-1B-Instruct"


@dataclass(frozen=True)
class ResolvedWeights:
    path: Path
    source: str  # how it was found, for the log line: "tiny", "path", "checkpoint_dir", "hf_cache"


def _hf_repo_for(model_id: str) -> str | None:
    """The Hugging Face repo of a Llama model id: itself if it looks like `org/name`, else the
    repo llama-models' catalogue gives for a descriptor such as `Llama3.2-1B-Instruct`."""
    if "/" in model_id and not model_id.startswith(("/", ".", "~")):
        return model_id
    try:
        from llama_models.sku_list import resolve_model

        sku = resolve_model(model_id)
    except Exception:  # the catalogue is a hint only; any failure just means "no known repo"
        return None
    repo = getattr(sku, "huggingface_repo", None) if sku is not None else None
    return str(repo) if repo else None


def _from_hf_cache(repo_id: str, cache_dir: str | None) -> Path | None:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, cache_dir=cache_dir, local_files_only=True))
    except Exception:  # LocalEntryNotFoundError, a malformed repo id, ...: not in the cache
        return None


def _is_hf_checkpoint(path: Path) -> bool:
    return (path / "config.json").is_file()


def _meta_format_hint(path: Path) -> str:
    if (path / "params.json").is_file() or any(path.glob("consolidated*.pth")):
        return (
            f" {path} holds Meta's original checkpoint format (params.json, consolidated.*.pth); "
            "this provider loads the Hugging Face format (config.json, *.safetensors)."
        )
    return ""


def resolve_weights(model_id: str, config: TransformersInferenceConfig) -> ResolvedWeights:
    """Where the weights of `model_id` (a provider_resource_id) are, trying in order: the tiny
    test model, a local directory, checkpoint_dir/<id>, the local Hugging Face cache."""
    if model_id == TINY_MODEL_ID:
        return ResolvedWeights(ensure_tiny_model(config.tiny_model_dir), "tiny")

    looked: list[str] = []
    hints: list[str] = []
    candidates: list[tuple[Path, str]] = [(Path(model_id).expanduser(), "path")]
    if config.checkpoint_dir:
        candidates.append((Path(config.checkpoint_dir).expanduser() / model_id, "checkpoint_dir"))
    for path, source in candidates:
        looked.append(f"{source} {path}")
        if path.is_dir():
            if _is_hf_checkpoint(path):
                return ResolvedWeights(path, source)
            hints.append(_meta_format_hint(path) or f" {path} exists but has no config.json.")

    repo_id = _hf_repo_for(model_id)
    if repo_id:
        cache = config.hf_cache_dir or os.environ.get("HF_HUB_CACHE") or "~/.cache/huggingface/hub"
        looked.append(f"the Hugging Face cache ({cache}) for {repo_id}")
        snapshot = _from_hf_cache(repo_id, config.hf_cache_dir)
        if snapshot is not None and _is_hf_checkpoint(snapshot):
            return ResolvedWeights(snapshot, "hf_cache")

    raise InvalidRequest(_missing_weights_message(model_id, repo_id, looked, "".join(hints), config))


def _missing_weights_message(
    model_id: str, repo_id: str | None, looked: list[str], hints: str, config: TransformersInferenceConfig
) -> str:
    repo = repo_id or EXAMPLE_HF_REPO
    target = Path(config.checkpoint_dir or "~/.llama/checkpoints").expanduser() / model_id.split("/")[-1]
    return (
        f"No weights found for model '{model_id}'. Looked in: {'; '.join(looked)}.{hints} "
        f"Get Hugging Face format weights with `huggingface-cli download {repo} --local-dir {target}` "
        f"(or `llama model download --source huggingface --model-id {model_id}`), then set "
        "checkpoint_dir to the folder holding it or register the model with its path as "
        f"provider_model_id. For an offline smoke test use the model id '{TINY_MODEL_ID}'."
    )


# --- loading ------------------------------------------------------------------------------------


def pick_device(requested: str) -> str:
    import torch

    if requested != "auto":
        return requested
    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def pick_dtype(requested: str, device: str) -> Any:
    import torch

    if requested != "auto":
        return getattr(torch, requested)
    if device == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device == "mps":
        return torch.float16
    return torch.float32  # CPU bf16 matmuls are slow on most machines and lose precision


def load_causal_lm(path: Path, device: str, dtype: Any) -> Any:
    """A transformers causal LM from a local Hugging Face checkpoint, in eval mode on `device`."""
    import transformers
    from transformers import AutoModelForCausalLM

    transformers.utils.logging.disable_progress_bar()
    # transformers 4.56 renamed torch_dtype to dtype; 5.x warns about the old name.
    major, minor = (int(part) for part in transformers.__version__.split(".")[:2])
    dtype_kwarg = "dtype" if (major, minor) >= (4, 56) else "torch_dtype"
    try:
        model = AutoModelForCausalLM.from_pretrained(
            str(path), local_files_only=True, **{dtype_kwarg: dtype}
        )
    except (OSError, ValueError) as exc:
        raise ProviderError(f"could not load the checkpoint at {path}: {exc}") from exc
    model.to(device)
    model.eval()
    log.info("loaded %s (%s) on %s as %s", path, type(model).__name__, device, dtype)
    return model
