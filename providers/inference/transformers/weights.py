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
from llama_stack.models.tiny_vision import TINY_VISION_MODEL_ID, ensure_tiny_vision_model

from .config import TransformersInferenceConfig
from .gguf import dequantized_checkpoint, find_gguf, is_gguf_model

log = logging.getLogger(__name__)

EXAMPLE_HF_REPO = "meta-llama/Llama-3.2-1B-Instruct"
# Where `llama model download` puts checkpoints; the default checkpoint_dir.
DEFAULT_CHECKPOINT_DIR = "~/.llama/checkpoints"


@dataclass(frozen=True)
class ResolvedWeights:
    path: Path
    source: str  # how it was found, for the log line: "tiny", "gguf", "path", "checkpoint_dir", "hf_cache"


@dataclass(frozen=True)
class CatalogueEntry:
    """What llama-models' catalogue knows of a model id (a descriptor or a Hugging Face repo)."""

    descriptor: str | None
    hf_repo: str | None


def _catalogue_entry(model_id: str) -> CatalogueEntry:
    looks_like_repo = "/" in model_id and not model_id.startswith(("/", ".", "~"))
    fallback = CatalogueEntry(None, model_id if looks_like_repo else None)
    try:
        from llama_models.sku_list import resolve_model

        sku = resolve_model(model_id)
    except Exception:  # the catalogue is a hint only; any failure just means "not in it"
        return fallback
    if sku is None:
        return fallback
    return CatalogueEntry(sku.descriptor(), sku.huggingface_repo or fallback.hf_repo)


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
    test models (text and vision), a GGUF checkpoint (dequantized once, then cached), a local
    directory, checkpoint_dir/<id> (and /<descriptor> for a catalogue id such as
    meta-llama/Llama-3.2-1B-Instruct), the local Hugging Face cache."""
    if model_id == TINY_MODEL_ID:
        return ResolvedWeights(ensure_tiny_model(config.tiny_model_dir), "tiny")
    if model_id == TINY_VISION_MODEL_ID:
        return ResolvedWeights(ensure_tiny_vision_model(config.tiny_model_dir), "tiny")
    if is_gguf_model(model_id):
        return ResolvedWeights(dequantized_checkpoint(find_gguf(model_id), config.gguf_cache_dir), "gguf")

    looked: list[str] = []
    hints: list[str] = []
    entry = _catalogue_entry(model_id)
    checkpoints = Path(config.checkpoint_dir or DEFAULT_CHECKPOINT_DIR).expanduser()
    candidates: list[tuple[Path, str]] = [(Path(model_id).expanduser(), "path")]
    for name in dict.fromkeys(n for n in (model_id, entry.descriptor) if n and not n.startswith(("/", "~"))):
        candidates.append((checkpoints / name, "checkpoint_dir"))
    for path, source in candidates:
        looked.append(f"{source} {path}")
        if path.is_dir():
            if _is_hf_checkpoint(path):
                return ResolvedWeights(path, source)
            hints.append(_meta_format_hint(path) or f" {path} exists but has no config.json.")

    if entry.hf_repo:
        cache = config.hf_cache_dir or os.environ.get("HF_HUB_CACHE") or "~/.cache/huggingface/hub"
        looked.append(f"the Hugging Face cache ({cache}) for {entry.hf_repo}")
        snapshot = _from_hf_cache(entry.hf_repo, config.hf_cache_dir)
        if snapshot is not None and _is_hf_checkpoint(snapshot):
            return ResolvedWeights(snapshot, "hf_cache")

    raise InvalidRequest(_missing_weights_message(model_id, entry, looked, "".join(hints), checkpoints))


def _missing_weights_message(
    model_id: str, entry: CatalogueEntry, looked: list[str], hints: str, checkpoints: Path
) -> str:
    repo = entry.hf_repo or EXAMPLE_HF_REPO
    descriptor = entry.descriptor or "Llama3.2-1B-Instruct"
    target = checkpoints / (entry.descriptor or model_id.split("/")[-1])
    # `llama model download` skips *.safetensors by default (it fetches Meta's original format):
    # overriding --ignore-patterns makes it fetch the Hugging Face format this provider loads.
    return (
        f"No weights found for model '{model_id}'. Looked in: {'; '.join(looked)}.{hints} "
        f"Get Hugging Face format weights with `huggingface-cli download {repo} --local-dir {target}` "
        f"or `llama model download --source huggingface --model-id {descriptor} --ignore-patterns 'original/*'` "
        f"(it writes to ~/.llama/checkpoints/{descriptor}), then point checkpoint_dir at the folder "
        "holding it or register the model with its path as provider_model_id. "
        f"For an offline smoke test use the model id '{TINY_MODEL_ID}'."
    )


# --- loading ------------------------------------------------------------------------------------


def pick_device(requested: str) -> str:
    """The configured device, checked to exist (a clear startup error beats a CUDA traceback),
    or for "auto" the best one present: cuda, then mps, then cpu."""
    import torch

    if requested == "cuda" and not torch.cuda.is_available():
        raise ProviderError("device 'cuda' is configured but torch sees no CUDA GPU; set device to auto or cpu")
    if requested == "mps" and not torch.backends.mps.is_available():
        raise ProviderError("device 'mps' is configured but torch sees no Apple GPU (MPS); set device to auto or cpu")
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


def dtype_kwargs(dtype: Any) -> dict[str, Any]:
    """`from_pretrained`'s dtype argument: transformers 4.56 renamed torch_dtype to dtype."""
    import transformers

    major, minor = (int(part) for part in transformers.__version__.split(".")[:2])
    return {"dtype" if (major, minor) >= (4, 56) else "torch_dtype": dtype}


def load_causal_lm(path: Path, device: str, dtype: Any) -> Any:
    """A transformers causal LM from a local Hugging Face checkpoint, in eval mode on `device`."""
    from transformers import AutoModelForCausalLM

    auto_class: Any = AutoModelForCausalLM
    try:
        model = auto_class.from_pretrained(str(path), local_files_only=True, **dtype_kwargs(dtype))
    except (OSError, ValueError) as exc:
        raise ProviderError(f"could not load the checkpoint at {path}: {exc}") from exc
    model.to(device)
    model.eval()
    log.info("loaded %s (%s) on %s as %s", path, type(model).__name__, device, dtype)
    return model
