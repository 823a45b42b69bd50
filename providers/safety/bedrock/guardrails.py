"""Bedrock Guardrails as shields: the last message of a conversation goes to ApplyGuardrail (as
INPUT when a user or tool wrote it, as OUTPUT when the model did), and an intervention becomes a
SafetyViolation that names the policies that fired."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from llama_stack.apis.common import CompletionMessage, JsonValue, Message, SafetyViolation, content_text
from llama_stack.apis.errors import InvalidRequest
from llama_stack.apis.safety import RunShieldRequest, RunShieldResponse
from llama_stack.apis.shields import Shield
from llama_stack.providers.inference.bedrock.inference import make_client, translate

from .config import BedrockSafetyConfig

# Upstream Llama Stack's Bedrock shields spell the version `guardrailVersion`; both are accepted.
VERSION_PARAMS = ("guardrail_version", "guardrailVersion")
BLOCKING_ACTIONS = {"BLOCKED"}


@dataclass(frozen=True)
class Guardrail:
    identifier: str  # the guardrail's id or ARN
    version: str


def guardrail_for(shield: Shield, default_version: str) -> Guardrail:
    unknown = sorted(set(shield.params) - set(VERSION_PARAMS))
    if unknown:
        raise InvalidRequest(
            f"shield '{shield.identifier}': unknown params {', '.join(unknown)} "
            "(a Bedrock Guardrail takes guardrail_version)"
        )
    version = next((shield.params[name] for name in VERSION_PARAMS if name in shield.params), default_version)
    if not isinstance(version, str | int) or not str(version).strip():
        raise InvalidRequest(f"shield '{shield.identifier}': params.guardrail_version must be DRAFT or a number")
    return Guardrail(shield.provider_resource_id, str(version).strip())


def findings(assessments: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Every policy that acted, as {policy, name, action}, from ApplyGuardrail's assessments."""
    found: list[dict[str, str]] = []

    def add(policy: str, name: Any, action: Any) -> None:
        if action and action != "NONE":
            found.append({"policy": policy, "name": str(name), "action": str(action)})

    for assessment in assessments:
        for topic in assessment.get("topicPolicy", {}).get("topics", []):
            add("topic", topic.get("name"), topic.get("action"))
        for content in assessment.get("contentPolicy", {}).get("filters", []):
            add("content", content.get("type"), content.get("action"))
        words = assessment.get("wordPolicy", {})
        for word in words.get("customWords", []):
            add("word", word.get("match"), word.get("action"))
        for listed in words.get("managedWordLists", []):
            add("word", listed.get("type"), listed.get("action"))
        sensitive = assessment.get("sensitiveInformationPolicy", {})
        for entity in sensitive.get("piiEntities", []):
            add("pii", entity.get("type"), entity.get("action"))
        for regex in sensitive.get("regexes", []):
            add("regex", regex.get("name"), regex.get("action"))
        for grounding in assessment.get("contextualGroundingPolicy", {}).get("filters", []):
            add("grounding", grounding.get("type"), grounding.get("action"))
    return found


def violation_from(answer: dict[str, Any], guardrail: Guardrail) -> SafetyViolation | None:
    if answer.get("action") != "GUARDRAIL_INTERVENED":
        return None
    acted = findings(answer.get("assessments", []))
    replacement = " ".join(str(output.get("text", "")) for output in answer.get("outputs", [])).strip()
    # A guardrail that only masked (PII anonymized) let the content through, changed: a warning.
    blocking = not acted or any(item["action"] in BLOCKING_ACTIONS for item in acted)
    metadata: dict[str, JsonValue] = {
        "violation_type": ",".join(f"{item['policy']}:{item['name']}" for item in acted) or "guardrail",
        "guardrail_id": guardrail.identifier,
        "guardrail_version": guardrail.version,
        "findings": [dict(item) for item in acted],
    }
    if not blocking:
        metadata["masked_text"] = replacement
    return SafetyViolation(
        violation_level="error" if blocking else "warn",
        user_message=(replacement or "I can't help with that: the guardrail blocked it.")
        if blocking
        else "The guardrail masked sensitive information in the content.",
        metadata=metadata,
    )


def guardrail_source(message: Message) -> str:
    return "OUTPUT" if isinstance(message, CompletionMessage) else "INPUT"


class BedrockGuardrails:
    """Implements Safety over one bedrock-runtime client; each registered shield is one guardrail."""

    def __init__(self, config: BedrockSafetyConfig, client: Any | None = None) -> None:
        self.config = config
        self.client = client if client is not None else make_client(config)
        self.where = f"Bedrock Guardrails at {self.client.meta.endpoint_url}"
        self.guardrails: dict[str, Guardrail] = {}  # provider_resource_id -> its guardrail

    async def register_shield(self, shield: Shield) -> Shield:
        # Whether the guardrail exists shows on the first call: looking it up needs the `bedrock`
        # control-plane permission (GetGuardrail), which a runtime-only role does not have.
        self.guardrails[shield.provider_resource_id] = guardrail_for(shield, self.config.guardrail_version)
        return shield

    async def unregister_shield(self, identifier: str) -> None:
        self.guardrails.pop(identifier, None)

    async def run_shield(self, request: RunShieldRequest) -> RunShieldResponse:
        guardrail = self.guardrails.get(request.shield_id) or Guardrail(
            request.shield_id, self.config.guardrail_version
        )
        last = request.messages[-1]
        text = content_text(last.content).strip()
        if isinstance(last, CompletionMessage):
            text = "\n".join([text, *(f"{call.tool_name}({call.arguments})" for call in last.tool_calls)]).strip()
        if not text:
            return RunShieldResponse()  # nothing a guardrail reads (e.g. an image alone)
        try:
            answer = await asyncio.to_thread(
                self.client.apply_guardrail,
                guardrailIdentifier=guardrail.identifier,
                guardrailVersion=guardrail.version,
                source=guardrail_source(last),
                content=[{"text": {"text": text}}],
            )
        except Exception as err:
            raise translate(err, self.where) from err
        return RunShieldResponse(violation=violation_from(answer, guardrail))

    async def shutdown(self) -> None:
        return None
