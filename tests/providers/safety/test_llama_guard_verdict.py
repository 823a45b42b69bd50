"""Every answer shape a Llama Guard model gives (or a broken one might), read into the shield's
response: safe, unsafe with codes, unsafe without readable codes, and unparsable output."""

from __future__ import annotations

from typing import Any

import pytest

from llama_stack.apis.common import CompletionMessage
from llama_stack.apis.errors import ModelNotFound, ProviderError
from llama_stack.apis.inference import ChatCompletionRequest, ChatCompletionResponse
from llama_stack.apis.safety import RunShieldRequest, RunShieldResponse
from llama_stack.providers.safety.llama_guard import CustomCategory, LlamaGuardConfig
from llama_stack.providers.safety.llama_guard.shield import LlamaGuardShield


class FixedAnswer:
    """An inference backend whose guard model always answers `output`."""

    def __init__(self, output: str) -> None:
        self.output = output

    async def chat_completion(self, request: ChatCompletionRequest) -> ChatCompletionResponse:
        if request.model_id == "missing":
            raise ModelNotFound("missing")
        return ChatCompletionResponse(completion_message=CompletionMessage(content=self.output))


async def judge(output: str, **config: Any) -> RunShieldResponse:
    shield = LlamaGuardShield(LlamaGuardConfig(**config), inference=FixedAnswer(output))
    request = RunShieldRequest.model_validate({"shield_id": "g", "messages": [{"role": "user", "content": "x"}]})
    response: RunShieldResponse = await shield.run_shield(request)
    return response


@pytest.mark.parametrize("output", ["safe", "safe\n", "  Safe  ", "\n\nsafe", "safe.", "SAFE"])
async def test_safe_answers(output: str) -> None:
    assert (await judge(output)).violation is None


@pytest.mark.parametrize(
    ("output", "violation_type", "categories"),
    [
        ("unsafe\nS1", "S1", ["Violent Crimes"]),
        ("unsafe\nS1,S2", "S1,S2", ["Violent Crimes", "Non-Violent Crimes"]),
        ("unsafe\ns10, S11 ", "S10,S11", ["Hate", "Self-Harm"]),
        ("\nunsafe\nS9\n", "S9", ["Indiscriminate Weapons"]),
        ("Unsafe\nS12,S12", "S12", ["Sexual Content"]),
        ("unsafe\n\nS7", "S7", ["Privacy"]),
    ],
)
async def test_unsafe_answers_name_their_categories(output: str, violation_type: str, categories: list[str]) -> None:
    violation = (await judge(output)).violation
    assert violation is not None and violation.violation_level == "error"
    assert violation.metadata["violation_type"] == violation_type
    assert violation.metadata["categories"] == categories
    assert violation.user_message is not None
    for name in categories:
        assert name in violation.user_message


async def test_unsafe_without_codes_still_blocks() -> None:
    violation = (await judge("unsafe")).violation
    assert violation is not None and violation.violation_level == "error"
    assert violation.metadata["violation_type"] == "unspecified" and violation.metadata["categories"] == []


async def test_unsafe_with_unreadable_codes_blocks_and_reports_them() -> None:
    violation = (await judge("unsafe\nviolence, S1")).violation
    assert violation is not None and violation.violation_level == "error"
    assert violation.metadata["violation_type"] == "S1"
    assert violation.metadata["unrecognized"] == ["violence"]


async def test_unknown_code_is_named_as_unknown() -> None:
    violation = (await judge("unsafe\nS42")).violation
    assert violation is not None and violation.metadata["categories"] == ["Unknown category S42"]


async def test_custom_category_code_is_named() -> None:
    violation = (await judge("unsafe\nS14", custom_categories=[CustomCategory(name="Competitors")])).violation
    assert violation is not None and violation.metadata["categories"] == ["Competitors"]


async def test_excluded_categories_do_not_block() -> None:
    assert (await judge("unsafe\nS6", excluded_categories=["S6"])).violation is None
    violation = (await judge("unsafe\nS6,S1", excluded_categories=["S6"])).violation
    assert violation is not None and violation.metadata["violation_type"] == "S1"


@pytest.mark.parametrize(
    "output", ["", "   \n", "I'm sorry, I cannot help with that.", "The answer is safe", "unsafe?"]
)
async def test_unparsable_output_fails_closed_by_default(output: str) -> None:
    violation = (await judge(output)).violation
    assert violation is not None and violation.violation_level == "error"
    assert violation.metadata["violation_type"] == "unparsable"
    assert violation.metadata["reason"]
    assert violation.metadata["guard_model"] == "Llama-Guard-3-1B"


async def test_unparsable_output_can_be_let_through_with_a_warning() -> None:
    violation = (await judge("no idea", on_unparsable="allow")).violation
    assert violation is not None and violation.violation_level == "warn"
    assert "neither 'safe' nor 'unsafe'" in violation.metadata["reason"]


async def test_an_unregistered_guard_model_is_a_clear_server_error() -> None:
    with pytest.raises(ProviderError, match="'missing' is not registered"):
        await judge("safe", text_model="missing")
