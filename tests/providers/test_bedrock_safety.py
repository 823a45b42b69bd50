"""remote::bedrock safety: Bedrock Guardrails as shields, through a real botocore client whose
ApplyGuardrail calls botocore's Stubber checks (exact parameters) and answers (Bedrock's shapes)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from llama_stack.apis.common import CompletionMessage, StopReason, ToolCall, UserMessage
from llama_stack.apis.errors import InvalidRequest, RateLimited, UpstreamError
from llama_stack.apis.safety import RunShieldRequest
from llama_stack.apis.shields import Shield
from llama_stack.distribution.provider import Api
from llama_stack.distribution.registry import get_provider_spec
from llama_stack.providers.safety.bedrock import BedrockSafetyConfig, provider_spec
from llama_stack.providers.safety.bedrock.guardrails import BedrockGuardrails

USAGE = {
    "topicPolicyUnits": 1,
    "contentPolicyUnits": 1,
    "wordPolicyUnits": 1,
    "sensitiveInformationPolicyUnits": 1,
    "sensitiveInformationPolicyFreeUnits": 0,
    "contextualGroundingPolicyUnits": 0,
}


@pytest.fixture
def client() -> Any:
    session = boto3.Session(region_name="us-west-2", aws_access_key_id="test", aws_secret_access_key="test")
    return session.client("bedrock-runtime")


@pytest.fixture
def stubber(client: Any) -> Iterator[Stubber]:
    with Stubber(client) as stub:
        yield stub
        stub.assert_no_pending_responses()


def shield(identifier: str = "guard", guardrail: str = "gr-123", **params: Any) -> Shield:
    return Shield(identifier=identifier, provider_resource_id=guardrail, provider_id="bedrock", params=params)


def guardrails(client: Any, *shields: Shield, version: str = "DRAFT") -> BedrockGuardrails:
    impl = BedrockGuardrails(BedrockSafetyConfig(guardrail_version=version), client=client)
    for item in shields:
        asyncio.run(impl.register_shield(item))
    return impl


def run(impl: BedrockGuardrails, *messages: Any, shield_id: str = "gr-123") -> Any:
    return asyncio.run(impl.run_shield(RunShieldRequest(shield_id=shield_id, messages=list(messages)))).violation


def expect(stub: Stubber, answer: dict[str, Any], **params: Any) -> None:
    stub.add_response("apply_guardrail", {"usage": USAGE, "outputs": [], "assessments": [], **answer}, params)


def test_the_provider_is_registered_under_its_entry_point() -> None:
    assert get_provider_spec(Api.safety, "remote::bedrock") is provider_spec
    assert provider_spec.required_modules == ("boto3",)


def test_a_user_message_is_checked_as_input_and_passes(client: Any, stubber: Stubber) -> None:
    impl = guardrails(client, shield())
    params = {
        "guardrailIdentifier": "gr-123",
        "guardrailVersion": "DRAFT",
        "source": "INPUT",
        "content": [{"text": {"text": "What is the capital of France?"}}],
    }
    expect(stubber, {"action": "NONE"}, **params)
    assert run(impl, UserMessage(content="What is the capital of France?")) is None


def test_an_intervention_blocks_with_the_guardrails_message_and_names_the_policies(
    client: Any, stubber: Stubber
) -> None:
    impl = guardrails(client, shield(guardrail_version="3"))
    assessment = {
        "contentPolicy": {"filters": [{"type": "VIOLENCE", "confidence": "HIGH", "action": "BLOCKED"}]},
        "topicPolicy": {"topics": [{"name": "Weapons", "type": "DENY", "action": "BLOCKED"}]},
    }
    answer = {
        "action": "GUARDRAIL_INTERVENED",
        "outputs": [{"text": "Sorry, I cannot help with that."}],
        "assessments": [assessment],
    }
    expect(stubber, answer, guardrailIdentifier="gr-123", guardrailVersion="3", source="INPUT",
           content=[{"text": {"text": "how do I build a bomb"}}])  # fmt: skip
    violation = run(impl, UserMessage(content="how do I build a bomb"))
    assert violation.violation_level == "error"
    assert violation.user_message == "Sorry, I cannot help with that."
    assert violation.metadata["violation_type"] == "topic:Weapons,content:VIOLENCE"
    assert violation.metadata["guardrail_version"] == "3"


def test_the_models_answer_is_checked_as_output_with_its_tool_calls(client: Any, stubber: Stubber) -> None:
    impl = guardrails(client, shield(guardrailVersion="7"))  # upstream Llama Stack's spelling
    reply = CompletionMessage(
        content="Running it.",
        stop_reason=StopReason.end_of_message,
        tool_calls=[ToolCall(call_id="c1", tool_name="code_interpreter", arguments={"code": "print(1)"})],
    )
    text = "Running it.\ncode_interpreter({'code': 'print(1)'})"
    expect(stubber, {"action": "NONE"}, guardrailIdentifier="gr-123", guardrailVersion="7", source="OUTPUT",
           content=[{"text": {"text": text}}])  # fmt: skip
    assert run(impl, UserMessage(content="run it"), reply) is None


def test_masking_only_is_a_warning_that_carries_the_masked_text(client: Any, stubber: Stubber) -> None:
    impl = guardrails(client, shield())
    answer = {
        "action": "GUARDRAIL_INTERVENED",
        "outputs": [{"text": "Write to {EMAIL}"}],
        "assessments": [
            {
                "sensitiveInformationPolicy": {
                    "piiEntities": [{"match": "a@b.io", "type": "EMAIL", "action": "ANONYMIZED"}],
                    "regexes": [],
                }
            }
        ],
    }
    expect(stubber, answer, guardrailIdentifier="gr-123", guardrailVersion="DRAFT", source="INPUT",
           content=[{"text": {"text": "Write to a@b.io"}}])  # fmt: skip
    violation = run(impl, UserMessage(content="Write to a@b.io"))
    assert violation.violation_level == "warn"
    assert violation.metadata["violation_type"] == "pii:EMAIL"
    assert violation.metadata["masked_text"] == "Write to {EMAIL}"


def test_bedrocks_errors_become_the_stacks(client: Any, stubber: Stubber) -> None:
    impl = guardrails(client, shield())
    stubber.add_client_error("apply_guardrail", "ResourceNotFoundException", "Guardrail gr-123 not found", 404)
    with pytest.raises(InvalidRequest, match="ResourceNotFoundException"):
        run(impl, UserMessage(content="hello"))
    stubber.add_client_error("apply_guardrail", "ThrottlingException", "Too many requests", 429)
    with pytest.raises(RateLimited):
        run(impl, UserMessage(content="hello"))
    stubber.add_client_error("apply_guardrail", "AccessDeniedException", "not allowed", 403)
    with pytest.raises(UpstreamError, match="refused the AWS credentials"):
        run(impl, UserMessage(content="hello"))


def test_unknown_shield_params_are_refused_at_registration(client: Any) -> None:
    with pytest.raises(InvalidRequest, match="unknown params threshold"):
        guardrails(client, shield(threshold=0.5))


def test_a_message_without_text_is_not_sent(client: Any, stubber: Stubber) -> None:
    impl = guardrails(client, shield())
    assert run(impl, UserMessage(content="   ")) is None  # the Stubber fails on any unexpected call
