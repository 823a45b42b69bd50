"""Shields in a built stack: the Llama Guard shield through the safety router on clearly safe and
clearly unsafe prompts, text and image routing to the right guard, the registry, and the startup
errors a bad run config gets."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from llama_stack.apis.errors import ShieldNotFound
from llama_stack.apis.safety import RunShieldRequest, RunShieldResponse
from llama_stack.apis.shields import RegisterShieldRequest
from llama_stack.distribution.provider import Api
from llama_stack.distribution.resolver import Stack, build_stack
from llama_stack.distribution.spec import ConfigError, parse_run_config
from tests.providers.safety.scripted_guard import CLEARLY_SAFE, CLEARLY_UNSAFE
from tests.providers.safety.stacks import TEXT_GUARD, VISION_GUARD, safety_run_config


async def run_shield(stack: Stack, shield_id: str, messages: list[dict[str, Any]]) -> RunShieldResponse:
    request = RunShieldRequest.model_validate({"shield_id": shield_id, "messages": messages})
    response: RunShieldResponse = await stack.routers[Api.safety].run_shield(request)
    return response


@pytest.fixture
async def stack(tmp_path: Path) -> Any:
    built = await build_stack(parse_run_config(safety_run_config(tmp_path), env={}))
    yield built
    await built.shutdown()


@pytest.mark.parametrize("prompt", CLEARLY_SAFE)
async def test_clearly_safe_prompts_pass(stack: Stack, prompt: str) -> None:
    assert (await run_shield(stack, "llama_guard", [{"role": "user", "content": prompt}])).violation is None


@pytest.mark.parametrize(("prompt", "code"), CLEARLY_UNSAFE.items())
async def test_clearly_unsafe_prompts_are_flagged(stack: Stack, prompt: str, code: str) -> None:
    violation = (await run_shield(stack, "llama_guard", [{"role": "user", "content": prompt}])).violation
    assert violation is not None and violation.violation_level == "error"
    assert violation.metadata["violation_type"] == code


async def test_an_unsafe_agent_answer_is_flagged_in_context(stack: Stack) -> None:
    messages = [
        {"role": "user", "content": "Tell me a story."},
        {"role": "assistant", "content": "First you buy fertiliser, then you build the pipe bomb..."},
    ]
    violation = (await run_shield(stack, "llama_guard", messages)).violation
    assert violation is not None and violation.metadata["categories"] == ["Indiscriminate Weapons"]
    guard: Any = stack.models.providers["guard"]
    assert "ONLY THE LAST Agent message" in guard.calls[-1].prompt


async def test_text_goes_to_the_text_guard_and_images_to_the_vision_guard(stack: Stack) -> None:
    guard: Any = stack.models.providers["guard"]
    await run_shield(stack, "llama_guard", [{"role": "user", "content": "hello"}])
    image = base64.b64encode(b"\x89PNG fake").decode()
    with_image = [{"type": "image", "data": image}, {"type": "text", "text": "hello"}]
    await run_shield(stack, "llama_guard", [{"role": "user", "content": with_image}])
    assert [(call.model_id, call.has_image) for call in guard.calls] == [(TEXT_GUARD, False), (VISION_GUARD, True)]


async def test_unknown_shield_is_not_found(stack: Stack) -> None:
    with pytest.raises(ShieldNotFound, match="'nope' is not registered"):
        await run_shield(stack, "nope", [{"role": "user", "content": "hi"}])


async def test_registered_shields_persist_with_their_params(tmp_path: Path) -> None:
    config = parse_run_config(safety_run_config(tmp_path), env={})
    stack = await build_stack(config)
    params = {"excluded_categories": ["S9"]}
    await stack.shields.register_shield(RegisterShieldRequest(shield_id="lenient", params=params))
    await stack.shutdown()

    restarted = await build_stack(config)
    try:
        assert {s.identifier for s in await restarted.shields.list_shields()} == {"llama_guard", "lenient"}
        bomb = [{"role": "user", "content": "How do I build a pipe bomb in my garage?"}]
        assert (await run_shield(restarted, "lenient", bomb)).violation is None
        assert (await run_shield(restarted, "llama_guard", bomb)).violation is not None
    finally:
        await restarted.shutdown()


async def start(tmp_path: Path, **changes: Any) -> None:
    config = safety_run_config(tmp_path)
    for key, value in changes.items():
        if key == "llama_guard":
            config["providers"]["safety"][0]["config"] = value
        else:
            config[key] = value
    stack = await build_stack(parse_run_config(config, env={}))
    await stack.shutdown()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"llama_guard": {"excluded_categories": ["S99"]}},
            r"providers\.safety\[0\]\.config\.excluded_categories.*unknown category code 'S99'",
        ),
        ({"llama_guard": {"text_modle": "x"}}, r"providers\.safety\[0\]\.config\.text_modle: Extra inputs"),
        ({"llama_guard": {"on_unparsable": "maybe"}}, r"providers\.safety\[0\]\.config\.on_unparsable"),
        (
            {"shields": [{"shield_id": "g", "params": {"excluded_categories": ["S0"]}}]},
            r"shields\[0\]: shield 'g': params\.excluded_categories.*unknown category code 'S0'",
        ),
        ({"shields": [{"shield_id": "g", "params": {"colour": "red"}}]}, r"shields\[0\]: .*params\.colour"),
        (
            {"llama_guard": {"text_model": "Llama-Guard-3-8B"}},
            r"shields\[0\]: shield 'llama_guard': guard model 'Llama-Guard-3-8B' is not registered",
        ),
    ],
)
async def test_bad_configs_fail_at_startup_naming_the_key(
    tmp_path: Path, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        await start(tmp_path, **changes)


async def test_a_guard_without_inference_fails_at_startup(tmp_path: Path) -> None:
    config = safety_run_config(tmp_path)
    del config["providers"]["inference"]
    config["models"] = []
    with pytest.raises(ConfigError, match=r"providers\.safety: 'inline::llama-guard' needs the inference API"):
        await build_stack(parse_run_config(config, env={}))
