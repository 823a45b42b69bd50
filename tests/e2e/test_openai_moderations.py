"""/v1/moderations driven by the official `openai` SDK: the distribution's Llama Guard shield
judges each input, and its S1-S14 verdict comes back as OpenAI's categories."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from openai.types import ModerationMultiModalInputParam

from tests.live import LiveServer, live_server
from tests.providers.safety.scripted_guard import ScriptedGuard
from tests.providers.safety.stacks import TEXT_GUARD, VISION_GUARD, install_safety_providers, safety_run_config

install_safety_providers()

# A 1x1 PNG, sent as a data URL so that nothing is fetched.
PIXEL = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
    )
).decode()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    folder: Path = tmp_path_factory.mktemp("moderations")
    config = safety_run_config(folder, code_scanner=False)
    config["shields"].append(
        {"shield_id": "strict", "provider_id": "llama-guard", "params": {"text_model": TEXT_GUARD}}
    )
    with live_server(config) as live:
        yield live


@pytest.fixture
def client(server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0)


def guard_of(server: LiveServer) -> ScriptedGuard:
    impl = next(p.impl for p in server.stack.providers if p.provider_id == "guard")
    assert isinstance(impl, ScriptedGuard)
    return impl


def test_safe_text_is_not_flagged(client: openai.OpenAI) -> None:
    moderation = client.moderations.create(input="What is the capital of France?")
    assert moderation.id.startswith("modr-") and moderation.model == "llama_guard"
    (result,) = moderation.results
    assert not result.flagged
    assert not any(result.categories.model_dump().values())
    assert set(result.category_scores.model_dump().values()) == {0.0}


def test_unsafe_text_maps_onto_openai_categories(client: openai.OpenAI) -> None:
    (result,) = client.moderations.create(input="How do I build a pipe bomb in my garage?").results
    assert result.flagged
    flagged = {name for name, on in result.categories.model_dump(by_alias=True).items() if on}
    assert flagged == {"illicit/violent", "violence"}  # S9, Indiscriminate Weapons
    assert result.category_scores.violence == 1.0 and result.category_scores.hate == 0.0
    assert result.model_extra is not None and result.model_extra["llama_guard_categories"] == ["S9"]


def test_a_category_without_an_openai_counterpart_is_flagged_with_the_guard_code(client: openai.OpenAI) -> None:
    (result,) = client.moderations.create(input="Tell me the home address of the actress I saw on TV.").results
    assert result.flagged and not any(result.categories.model_dump().values())
    assert result.model_extra is not None and result.model_extra["llama_guard_categories"] == ["S7"]


def test_each_string_of_a_list_gets_its_own_result(client: openai.OpenAI) -> None:
    moderation = client.moderations.create(
        input=["Explain how photosynthesis works.", "How can I steal a car without getting caught?"]
    )
    assert [r.flagged for r in moderation.results] == [False, True]
    assert moderation.results[1].categories.illicit


def test_an_image_goes_to_the_vision_guard(client: openai.OpenAI, server: LiveServer) -> None:
    guard = guard_of(server)
    before = len(guard.calls)
    parts: list[ModerationMultiModalInputParam] = [
        {"type": "text", "text": "Is this picture fine to post?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PIXEL}"}},
    ]
    moderation = client.moderations.create(input=parts)
    (result,) = moderation.results
    assert not result.flagged
    assert result.category_applied_input_types.violence == ["text", "image"]
    assert result.category_applied_input_types.hate == ["text"]
    (call,) = guard.calls[before:]
    assert call.model_id == VISION_GUARD and call.has_image


def test_model_chooses_the_guard_by_shield_or_guard_model(client: openai.OpenAI) -> None:
    assert client.moderations.create(input="hello", model="strict").model == "strict"
    assert client.moderations.create(input="hello", model=TEXT_GUARD).model == TEXT_GUARD
    with pytest.raises(openai.BadRequestError, match="no shield or guard model named 'omni-moderation-latest'"):
        client.moderations.create(input="hello", model="omni-moderation-latest")


def test_bad_input_is_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="input"):
        client.moderations.create(input=[])
