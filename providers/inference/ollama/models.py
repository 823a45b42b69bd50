"""The one table that maps Llama model ids to Ollama tags.

A registered model may be named by its llama-models descriptor (`Llama3.2-1B-Instruct`), its
Hugging Face repo (`meta-llama/Llama-3.2-1B-Instruct`) or an Ollama tag. Each entry names the tag
to pull when the model is missing, and other tags of the same model that are used when already
installed (someone who ran `ollama pull llama3.2:1b` gets that quantisation, not a second download).
A tag the table does not know passes through unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OllamaModel:
    llama_id: str  # the llama-models descriptor, which also names the prompt family
    hf_repo: str
    tag: str  # what `ollama pull` fetches when no tag of this model is installed
    alternatives: tuple[str, ...] = ()
    vision: bool = False
    embedding: bool = False

    @property
    def tags(self) -> tuple[str, ...]:
        return (self.tag, *self.alternatives)


MODEL_TABLE: tuple[OllamaModel, ...] = (
    OllamaModel("Llama3.1-8B-Instruct", "meta-llama/Llama-3.1-8B-Instruct", "llama3.1:8b-instruct-fp16",
                ("llama3.1:8b", "llama3.1:latest", "llama3.1:8b-instruct-q8_0", "llama3.1:8b-instruct-q4_K_M")),
    OllamaModel("Llama3.1-70B-Instruct", "meta-llama/Llama-3.1-70B-Instruct", "llama3.1:70b",
                ("llama3.1:70b-instruct-fp16", "llama3.1:70b-instruct-q8_0")),
    OllamaModel("Llama3.1-405B-Instruct", "meta-llama/Llama-3.1-405B-Instruct", "llama3.1:405b",
                ("llama3.1:405b-instruct-fp16",)),
    OllamaModel("Llama3.2-1B-Instruct", "meta-llama/Llama-3.2-1B-Instruct", "llama3.2:1b-instruct-fp16",
                ("llama3.2:1b", "llama3.2:1b-instruct-q8_0", "llama3.2:1b-instruct-q4_K_M")),
    OllamaModel("Llama3.2-3B-Instruct", "meta-llama/Llama-3.2-3B-Instruct", "llama3.2:3b-instruct-fp16",
                ("llama3.2:3b", "llama3.2:latest", "llama3.2:3b-instruct-q8_0", "llama3.2:3b-instruct-q4_K_M")),
    OllamaModel("Llama3.2-11B-Vision-Instruct", "meta-llama/Llama-3.2-11B-Vision-Instruct", "llama3.2-vision:11b",
                ("llama3.2-vision:latest", "llama3.2-vision:11b-instruct-fp16", "llama3.2-vision:11b-instruct-q8_0"),
                vision=True),
    OllamaModel("Llama3.2-90B-Vision-Instruct", "meta-llama/Llama-3.2-90B-Vision-Instruct", "llama3.2-vision:90b",
                ("llama3.2-vision:90b-instruct-fp16", "llama3.2-vision:90b-instruct-q8_0"), vision=True),
    OllamaModel("Llama3.3-70B-Instruct", "meta-llama/Llama-3.3-70B-Instruct", "llama3.3:70b",
                ("llama3.3:latest", "llama3.3:70b-instruct-fp16", "llama3.3:70b-instruct-q8_0")),
    OllamaModel("Llama-Guard-3-1B", "meta-llama/Llama-Guard-3-1B", "llama-guard3:1b", ("llama-guard3:1b-q8_0",)),
    OllamaModel("Llama-Guard-3-8B", "meta-llama/Llama-Guard-3-8B", "llama-guard3:8b",
                ("llama-guard3:latest", "llama-guard3:8b-q8_0")),
    OllamaModel("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2", "all-minilm:l6-v2",
                ("all-minilm:latest", "all-minilm:22m"), embedding=True),
    OllamaModel("nomic-embed-text-v1.5", "nomic-ai/nomic-embed-text-v1.5", "nomic-embed-text:latest",
                ("nomic-embed-text:v1.5",), embedding=True),
)  # fmt: skip


def normalize_tag(name: str) -> str:
    """Ollama's own naming: a name without a tag means `:latest`; names are case-insensitive."""
    name = name.strip().lower()
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def _index() -> dict[str, OllamaModel]:
    index: dict[str, OllamaModel] = {}
    for entry in MODEL_TABLE:
        index[entry.llama_id.lower()] = entry
        index[entry.hf_repo.lower()] = entry
        for tag in entry.tags:
            index[normalize_tag(tag)] = entry
    return index


_INDEX = _index()


def lookup(model_id: str) -> OllamaModel | None:
    """The table entry for a Llama id, a Hugging Face repo or one of the entry's tags."""
    return _INDEX.get(model_id.strip().lower()) or _INDEX.get(normalize_tag(model_id))


def tag_candidates(model_id: str) -> tuple[str, ...]:
    """The Ollama tags that serve `model_id`, the one to pull first; a raw tag stands for itself."""
    entry = lookup(model_id)
    if entry is None:
        return (model_id.strip(),)
    # A tag the caller named explicitly wins over the table's preferred one.
    named = normalize_tag(model_id)
    explicit = [tag for tag in entry.tags if normalize_tag(tag) == named]
    return (*explicit, *(tag for tag in entry.tags if tag not in explicit))
