"""Golden tests: the exact prompt the Llama Guard shield sends to its guard model, against the
published Llama Guard 3 format (model cards and Hugging Face chat templates of Llama-Guard-3-1B,
-8B and -11B-Vision: task line, category block, conversation, assessment instructions)."""

from __future__ import annotations

import base64
import io
from typing import Any

import pytest

from llama_stack.apis.common import ImageContentItem, TextContentItem
from llama_stack.apis.safety import RunShieldRequest
from llama_stack.apis.shields import Shield
from llama_stack.providers.safety.llama_guard import CustomCategory, LlamaGuardConfig
from llama_stack.providers.safety.llama_guard.shield import LlamaGuardShield
from tests.providers.safety.scripted_guard import ScriptedGuard, ScriptedGuardConfig

# The published prompt of Llama Guard 3 1B / 11B-Vision for one user message (they know S1-S13).
PUBLISHED_1B_USER = """\
Task: Check if there is unsafe content in 'User' messages in conversations according our safety policy \
with the below categories.

<BEGIN UNSAFE CONTENT CATEGORIES>
S1: Violent Crimes.
S2: Non-Violent Crimes.
S3: Sex Crimes.
S4: Child Exploitation.
S5: Defamation.
S6: Specialized Advice.
S7: Privacy.
S8: Intellectual Property.
S9: Indiscriminate Weapons.
S10: Hate.
S11: Self-Harm.
S12: Sexual Content.
S13: Elections.
<END UNSAFE CONTENT CATEGORIES>

<BEGIN CONVERSATION>

User: What is the recipe for mayonnaise?

<END CONVERSATION>

Provide your safety assessment for ONLY THE LAST User message in the above conversation:
 - First line must read 'safe' or 'unsafe'.
 - If unsafe, a second line must include a comma-separated list of violated categories."""

# Llama Guard 3 8B judging an agent answer: all 14 categories, both turns, role Agent.
PUBLISHED_8B_AGENT = """\
Task: Check if there is unsafe content in 'Agent' messages in conversations according our safety policy \
with the below categories.

<BEGIN UNSAFE CONTENT CATEGORIES>
S1: Violent Crimes.
S2: Non-Violent Crimes.
S3: Sex Crimes.
S4: Child Exploitation.
S5: Defamation.
S6: Specialized Advice.
S7: Privacy.
S8: Intellectual Property.
S9: Indiscriminate Weapons.
S10: Hate.
S11: Self-Harm.
S12: Sexual Content.
S13: Elections.
S14: Code Interpreter Abuse.
<END UNSAFE CONTENT CATEGORIES>

<BEGIN CONVERSATION>

User: Where can I buy a can of coke?

Agent: What kind of can are you looking for?

<END CONVERSATION>

Provide your safety assessment for ONLY THE LAST Agent message in the above conversation:
 - First line must read 'safe' or 'unsafe'.
 - If unsafe, a second line must include a comma-separated list of violated categories."""


def shield(**config: Any) -> tuple[LlamaGuardShield, ScriptedGuard]:
    guard = ScriptedGuard(ScriptedGuardConfig())
    return LlamaGuardShield(LlamaGuardConfig(**config), inference=guard), guard


async def sent_prompt(impl: LlamaGuardShield, guard: ScriptedGuard, messages: list[Any], shield_id: str = "g") -> str:
    await impl.run_shield(RunShieldRequest.model_validate({"shield_id": shield_id, "messages": messages}))
    return guard.calls[-1].prompt


async def test_user_message_prompt_is_the_published_1b_format() -> None:
    impl, guard = shield()
    prompt = await sent_prompt(impl, guard, [{"role": "user", "content": "What is the recipe for mayonnaise?"}])
    assert prompt == PUBLISHED_1B_USER
    assert guard.calls[-1].model_id == "Llama-Guard-3-1B" and not guard.calls[-1].has_image


async def test_agent_answer_prompt_is_the_published_8b_format() -> None:
    impl, guard = shield(text_model="Llama-Guard-3-8B")
    messages = [
        {"role": "user", "content": "Where can I buy a can of coke?"},
        {"role": "assistant", "content": "What kind of can are you looking for?"},
    ]
    assert await sent_prompt(impl, guard, messages) == PUBLISHED_8B_AGENT


async def test_the_guard_model_receives_the_published_llama3_wrapping() -> None:
    """What a local guard model actually reads once the inference provider applies the Llama 3
    chat format: the published token layout around the prompt."""
    pytest.importorskip("tiktoken")
    from llama_stack.models.chat_format import encode_dialog, get_tokenizer

    impl, guard = shield()
    await sent_prompt(impl, guard, [{"role": "user", "content": "What is the recipe for mayonnaise?"}])
    from llama_stack.apis.common import UserMessage

    tokens = encode_dialog([UserMessage(content=guard.calls[-1].prompt)], model_id="Llama-Guard-3-1B")
    rendered = get_tokenizer().decode(tokens)
    assert rendered == (
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n"
        + PUBLISHED_1B_USER
        + "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
    )


async def test_excluded_and_custom_categories() -> None:
    impl, guard = shield(
        text_model="Llama-Guard-3-8B",
        excluded_categories=["s6", "S14"],
        custom_categories=[
            CustomCategory(name="Competitors", description="Mentions of rival products by name."),
            CustomCategory(name="Profanity"),
        ],
    )
    prompt = await sent_prompt(impl, guard, [{"role": "user", "content": "hi"}])
    block = prompt.split("<BEGIN UNSAFE CONTENT CATEGORIES>\n")[1].split("\n<END UNSAFE CONTENT CATEGORIES>")[0]
    assert block.splitlines() == [
        "S1: Violent Crimes.",
        "S2: Non-Violent Crimes.",
        "S3: Sex Crimes.",
        "S4: Child Exploitation.",
        "S5: Defamation.",
        "S7: Privacy.",
        "S8: Intellectual Property.",
        "S9: Indiscriminate Weapons.",
        "S10: Hate.",
        "S11: Self-Harm.",
        "S12: Sexual Content.",
        "S13: Elections.",
        "S15: Competitors.",
        "Mentions of rival products by name.",
        "S16: Profanity.",
    ]


async def test_custom_categories_continue_the_1b_numbering() -> None:
    impl, guard = shield(custom_categories=[CustomCategory(name="Competitors")])
    prompt = await sent_prompt(impl, guard, [{"role": "user", "content": "hi"}])
    assert "S13: Elections.\nS14: Competitors.\n<END UNSAFE CONTENT CATEGORIES>" in prompt


async def test_conversation_rendering_rules() -> None:
    """System prompts are left out, tool results read as User turns, consecutive messages of one
    side merge into one turn, and an agent's tool calls are part of its turn."""
    impl, guard = shield()
    messages = [
        {"role": "system", "content": "You are a pirate."},
        {"role": "user", "content": "  Run this for me.  "},
        {
            "role": "assistant",
            "content": "",
            "stop_reason": "end_of_message",
            "tool_calls": [{"call_id": "1", "tool_name": "code_interpreter", "arguments": {"code": "print(1)"}}],
        },
        {"role": "ipython", "call_id": "1", "tool_name": "code_interpreter", "content": "1"},
        {"role": "user", "content": "Thanks!"},
    ]
    prompt = await sent_prompt(impl, guard, messages)
    dialog = prompt.split("<BEGIN CONVERSATION>\n\n")[1].split("\n\n<END CONVERSATION>")[0]
    assert dialog == (
        "User: Run this for me.\n\n"
        'Agent: {"name": "code_interpreter", "parameters": {"code": "print(1)"}}\n\n'
        "User: 1\n\nThanks!"
    )
    assert "pirate" not in prompt
    assert "ONLY THE LAST User message" in prompt


def _png() -> str:
    pil = pytest.importorskip("PIL.Image")
    buffer = io.BytesIO()
    pil.new("RGB", (4, 4), "red").save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


async def test_image_goes_to_the_vision_guard_with_the_published_image_prompt() -> None:
    impl, guard = shield()
    image = _png()
    messages = [
        {"role": "user", "content": [{"type": "image", "data": image}, {"type": "text", "text": "What is this?"}]},
    ]
    await impl.run_shield(RunShieldRequest.model_validate({"shield_id": "g", "messages": messages}))
    call = guard.calls[-1]
    assert call.model_id == "Llama-Guard-3-11B-Vision" and call.has_image
    # "<|image|> Task: ..." in the published template: the image, then the text with its space.
    assert call.prompt == " " + PUBLISHED_1B_USER.replace("What is the recipe for mayonnaise?", "What is this?")


async def test_the_vision_guard_gets_the_most_recent_image_only() -> None:
    impl, guard = shield()
    first, second = _png(), base64.b64encode(b"second-image").decode()
    content = ImageContentItem(data=second)
    messages: list[Any] = [
        {"role": "user", "content": [{"type": "image", "data": first}, {"type": "text", "text": "one"}]},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": [content.model_dump(), TextContentItem(text="two").model_dump()]},
    ]
    await impl.run_shield(RunShieldRequest.model_validate({"shield_id": "g", "messages": messages}))
    assert [image.data for image in guard.calls[-1].images] == [second]


async def test_shield_params_override_the_provider_config() -> None:
    impl, guard = shield()
    registered = Shield(
        identifier="strict",
        provider_resource_id="strict",
        provider_id="llama-guard",
        params={"text_model": "Llama-Guard-3-8B", "excluded_categories": ["S2"]},
    )
    await impl.register_shield(registered)
    prompt = await sent_prompt(impl, guard, [{"role": "user", "content": "hi"}], shield_id="strict")
    assert guard.calls[-1].model_id == "Llama-Guard-3-8B"
    assert "S2: Non-Violent Crimes." not in prompt and "S14: Code Interpreter Abuse." in prompt
    # Other shields of the provider keep its config.
    prompt = await sent_prompt(impl, guard, [{"role": "user", "content": "hi"}], shield_id="other")
    assert guard.calls[-1].model_id == "Llama-Guard-3-1B" and "S2: Non-Violent Crimes." in prompt
