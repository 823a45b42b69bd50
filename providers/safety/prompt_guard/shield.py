"""The Prompt Guard shield: scores the last message with a sequence classifier (Prompt-Guard-86M,
labels BENIGN / INJECTION / JAILBREAK) and blocks when the blocked labels' probability reaches the
threshold. Texts longer than the model's window are scored window by window; the worst counts."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from llama_stack.apis.common import SafetyViolation, content_text
from llama_stack.apis.errors import InvalidRequest
from llama_stack.apis.safety import RunShieldRequest, RunShieldResponse
from llama_stack.apis.shields import Shield

from .config import PromptGuardConfig, PromptGuardShieldParams

log = logging.getLogger(__name__)

DOWNLOAD_HINT = "llama model download --source huggingface --model-id Prompt-Guard-86M"


@dataclass(frozen=True)
class Rule:
    threshold: float
    blocked_labels: tuple[str, ...]


def find_weights(config: PromptGuardConfig) -> Path:
    """The folder holding the classifier, or a ValueError naming `model_path`, every place
    searched and how to get the weights."""
    name = config.model_path
    checkpoints = Path(config.checkpoint_dir).expanduser()
    candidates = [Path(name).expanduser(), checkpoints / name]
    if name == "Prompt-Guard-86M":
        candidates.append(checkpoints / "Prompt-Guard")  # the folder `llama model download` uses
    for candidate in candidates:
        if (candidate / "config.json").is_file():
            return candidate
    repo = name if "/" in name else f"meta-llama/{name}"
    cached = _from_hf_cache(repo)
    if cached is not None:
        return cached
    searched = ", ".join(str(c) for c in candidates) + f", the Hugging Face cache ({repo})"
    raise ValueError(
        f"model_path: Prompt Guard weights '{name}' not found (searched {searched}); get them with "
        f"`{DOWNLOAD_HINT}` or `huggingface-cli download {repo}`"
    )


def _from_hf_cache(repo: str) -> Path | None:
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo, local_files_only=True))
    except Exception:  # not cached, or not a valid repo id
        return None


def _device(choice: str) -> str:
    if choice == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return choice


class PromptGuardShield:
    def __init__(self, config: PromptGuardConfig, tokenizer: Any, model: Any, device: str) -> None:
        self.config = config
        self.tokenizer = tokenizer
        self.model = model
        self.device = device
        self.labels: list[str] = [model.config.id2label[i] for i in range(model.config.num_labels)]
        self.window = min(config.max_length, getattr(model.config, "max_position_embeddings", config.max_length))
        self.default_rule = self._rule(config.threshold, config.blocked_labels, "blocked_labels")
        self.rules: dict[str, Rule] = {}
        self.lock = asyncio.Lock()  # one forward pass at a time: the CPU is shared with generation

    @classmethod
    async def load(cls, config: PromptGuardConfig) -> PromptGuardShield:
        path = find_weights(config)
        device = _device(config.device)

        def load() -> tuple[Any, Any]:
            tokenizer = AutoTokenizer.from_pretrained(path)
            model = AutoModelForSequenceClassification.from_pretrained(path).to(device).eval()
            return tokenizer, model

        tokenizer, model = await asyncio.to_thread(load)
        log.info("Prompt Guard loaded from %s on %s", path, device)
        return cls(config, tokenizer, model, device)

    def _rule(self, threshold: float, labels: list[str], where: str) -> Rule:
        unknown = [label for label in labels if label not in self.labels]
        if unknown:
            raise ValueError(f"{where}: {', '.join(unknown)} not among the model's labels ({', '.join(self.labels)})")
        return Rule(threshold, tuple(labels))

    async def register_shield(self, shield: Shield) -> Shield:
        try:
            params = PromptGuardShieldParams.model_validate(shield.params)
            self.rules[shield.provider_resource_id] = self._rule(
                params.threshold or self.config.threshold,
                params.blocked_labels or list(self.default_rule.blocked_labels),
                "params.blocked_labels",
            )
        except ValidationError as e:
            problem = e.errors()[0]
            where = ".".join(str(part) for part in problem["loc"])
            raise InvalidRequest(f"shield '{shield.identifier}': params.{where}: {problem['msg']}") from e
        except ValueError as e:
            raise InvalidRequest(f"shield '{shield.identifier}': {e}") from e
        return shield

    async def unregister_shield(self, identifier: str) -> None:
        self.rules.pop(identifier, None)

    async def run_shield(self, request: RunShieldRequest) -> RunShieldResponse:
        text = content_text(request.messages[-1].content).strip()
        if not text:
            return RunShieldResponse()
        rule = self.rules.get(request.shield_id, self.default_rule)
        async with self.lock:
            windows = await asyncio.to_thread(self.window_probabilities, text)
        scores = [sum(window[label] for label in rule.blocked_labels) for window in windows]
        score = max(scores)
        probabilities = windows[scores.index(score)]
        if score < rule.threshold:
            return RunShieldResponse()
        worst = max(rule.blocked_labels, key=lambda label: probabilities[label])
        return RunShieldResponse(
            violation=SafetyViolation(
                violation_level="error",
                user_message="I can't process that: it was detected as a prompt injection or jailbreak attempt.",
                metadata={
                    "violation_type": worst,
                    "score": round(score, 4),
                    "threshold": rule.threshold,
                    "probabilities": {label: round(p, 4) for label, p in probabilities.items()},
                },
            )
        )

    def window_probabilities(self, text: str) -> list[dict[str, float]]:
        """Label probabilities of each window of the text."""
        encoded = self.tokenizer(
            text,
            truncation=True,
            max_length=self.window,
            return_overflowing_tokens=True,
            stride=min(32, self.window // 4),
            padding=True,
            return_tensors="pt",
        )
        inputs = {key: encoded[key].to(self.device) for key in ("input_ids", "attention_mask")}
        with torch.inference_mode():
            probs = self.model(**inputs).logits.float().softmax(dim=-1).cpu().tolist()
        return [dict(zip(self.labels, row, strict=True)) for row in probs]
