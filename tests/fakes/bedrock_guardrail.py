"""What a fake Amazon Bedrock Guardrail answers to ApplyGuardrail, in Bedrock's JSON shape.

The guardrail has a content filter (VIOLENCE and MISCONDUCT, blocked, fired by the same trigger
words as the fake Llama Guard: tests/fakes/guard_replies.py), a denied topic ("Investment advice",
fired by "stocks") and a PII policy that anonymizes e-mail addresses.
"""

from __future__ import annotations

import re
from typing import Any

from tests.fakes.guard_replies import TRIGGERS

BLOCKED_INPUT = "Sorry, the model cannot answer this question."
BLOCKED_OUTPUT = "Sorry, the model cannot answer this question (output blocked)."
FILTERS = {
    "VIOLENCE": TRIGGERS["Violent Crimes"] + TRIGGERS["Indiscriminate Weapons"],
    "MISCONDUCT": TRIGGERS["Non-Violent Crimes"],
}
TOPICS = {"Investment advice": ("stocks",)}
EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")


def apply_guardrail(body: dict[str, Any]) -> dict[str, Any]:
    """The answer to one ApplyGuardrail body: {source, content: [{text: {text}}]}."""
    text = " ".join(block.get("text", {}).get("text", "") for block in body.get("content", []))
    lowered = text.lower()
    filters = [
        {"type": kind, "confidence": "HIGH", "filterStrength": "HIGH", "action": "BLOCKED"}
        for kind, words in FILTERS.items()
        if any(word in lowered for word in words)
    ]
    topics = [
        {"name": name, "type": "DENY", "action": "BLOCKED"}
        for name, words in TOPICS.items()
        if any(word in lowered for word in words)
    ]
    emails = [{"match": found, "type": "EMAIL", "action": "ANONYMIZED"} for found in EMAIL.findall(text)]
    assessment: dict[str, Any] = {}
    if filters:
        assessment["contentPolicy"] = {"filters": filters}
    if topics:
        assessment["topicPolicy"] = {"topics": topics}
    if emails:
        assessment["sensitiveInformationPolicy"] = {"piiEntities": emails, "regexes": []}
    usage = {
        "topicPolicyUnits": 1,
        "contentPolicyUnits": 1,
        "wordPolicyUnits": 0,
        "sensitiveInformationPolicyUnits": 1,
        "sensitiveInformationPolicyFreeUnits": 0,
        "contextualGroundingPolicyUnits": 0,
    }
    if not assessment:
        return {"usage": usage, "action": "NONE", "outputs": [], "assessments": [{}]}
    if filters or topics:
        output = BLOCKED_OUTPUT if body.get("source") == "OUTPUT" else BLOCKED_INPUT
    else:
        output = EMAIL.sub("{EMAIL}", text)
    outputs = [{"text": output}]
    return {"usage": usage, "action": "GUARDRAIL_INTERVENED", "outputs": outputs, "assessments": [assessment]}
