"""Run configs for stacks with shields: a scripted chat model ("echo", tests/scripted.py), a
scripted Llama Guard serving both guard models, and the shields of this issue."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from llama_stack.distribution.registry import install_provider
from llama_stack.providers.safety.code_scanner import provider_spec as code_scanner_spec
from llama_stack.providers.safety.llama_guard import provider_spec as llama_guard_spec
from llama_stack.providers.safety.prompt_guard import provider_spec as prompt_guard_spec
from tests.providers.safety.scripted_guard import SCRIPTED_GUARD_SPEC
from tests.scripted import SCRIPTED_SPEC

TEXT_GUARD = "Llama-Guard-3-1B"
VISION_GUARD = "Llama-Guard-3-11B-Vision"
HAS_CODESHIELD = importlib.util.find_spec("codeshield") is not None


def install_safety_providers() -> None:
    """Until pyproject.toml lists them as entry points, tests install the providers in-process."""
    for spec in (SCRIPTED_SPEC, SCRIPTED_GUARD_SPEC, llama_guard_spec, prompt_guard_spec, code_scanner_spec):
        install_provider(spec)


def safety_run_config(
    tmp_path: Path,
    *,
    token_delay_s: float = 0.0,
    guard_delay_s: float = 0.0,
    prompt_guard_dir: Path | None = None,
    code_scanner: bool = False,
    llama_guard: dict[str, Any] | None = None,
    chat_model: str = "echo",
) -> dict[str, Any]:
    safety: list[dict[str, Any]] = [
        {"provider_id": "llama-guard", "provider_type": "inline::llama-guard", "config": llama_guard or {}}
    ]
    shields: list[dict[str, Any]] = [{"shield_id": "llama_guard", "provider_id": "llama-guard"}]
    if prompt_guard_dir is not None:
        safety.append(
            {
                "provider_id": "prompt-guard",
                "provider_type": "inline::prompt-guard",
                "config": {"model_path": str(prompt_guard_dir), "device": "cpu"},
            }
        )
        shields.append({"shield_id": "prompt_guard", "provider_id": "prompt-guard"})
    if code_scanner:
        safety.append({"provider_id": "code-scanner", "provider_type": "inline::code-scanner"})
        shields.append({"shield_id": "code_scanner", "provider_id": "code-scanner"})
    return {
        "version": 2,
        "image_name": "safety-test",
        "providers": {
            "inference": [
                {"provider_id": "chat", "provider_type": "test::scripted", "config": {"token_delay_s": token_delay_s}},
                {
                    "provider_id": "guard",
                    "provider_type": "test::scripted-llama-guard",
                    "config": {"delay_s": guard_delay_s},
                },
            ],
            "safety": safety,
        },
        "metadata_store": {"type": "sqlite", "db_path": str(tmp_path / "registry.db")},
        "models": [
            {"model_id": chat_model, "provider_id": "chat"},
            {"model_id": TEXT_GUARD, "provider_id": "guard"},
            {"model_id": VISION_GUARD, "provider_id": "guard"},
        ],
        "shields": shields,
    }
