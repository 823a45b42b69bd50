"""POST /v1/moderations: OpenAI's moderation endpoint as a shield call.

The guard is a registered shield: `model` names it (a shield id, or the guard model a Llama Guard
shield was registered with); without `model`, the first Llama Guard shield. Each string of the
input is judged on its own (one result each); a list of text and image parts is one message
(one result), images going to the shield's vision guard.

Llama Guard 3's hazard categories (S1-S14) map onto OpenAI's categories as below. S6
(Specialized Advice), S7 (Privacy), S8 (Intellectual Property) and S13 (Elections) have no OpenAI
counterpart: such input is `flagged` with no OpenAI category set, and every result carries the
guard's own codes in `llama_guard_categories`. Scores are 1.0 for a flagged category, else 0.0:
the guard gives a verdict, not a probability.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any, Literal

from fastapi import APIRouter
from pydantic import Field
from starlette.responses import Response

from llama_stack.apis.common import (
    URL,
    ImageContentItem,
    InterleavedContentItem,
    SafetyViolation,
    TextContentItem,
    UserMessage,
    WireModel,
)
from llama_stack.apis.errors import InvalidRequest, NotImplementedYet
from llama_stack.apis.safety import RunShieldRequest, Safety
from llama_stack.apis.shields import Shield, Shields
from llama_stack.server.params import JsonBodyRoute, json_response

LLAMA_GUARD = "inline::llama-guard"

CATEGORIES = (
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/intent",
    "self-harm/instructions",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)
# The categories OpenAI judges on images; the others are judged on text only.
IMAGE_CATEGORIES = frozenset({"self-harm", "self-harm/intent", "self-harm/instructions", "sexual", "violence"})

LLAMA_GUARD_TO_OPENAI: dict[str, tuple[str, ...]] = {
    "S1": ("violence", "illicit/violent"),  # Violent Crimes
    "S2": ("illicit",),  # Non-Violent Crimes
    "S3": ("sexual", "illicit"),  # Sex-Related Crimes
    "S4": ("sexual/minors",),  # Child Sexual Exploitation
    "S5": ("harassment",),  # Defamation
    "S6": (),  # Specialized Advice
    "S7": (),  # Privacy
    "S8": (),  # Intellectual Property
    "S9": ("illicit/violent", "violence"),  # Indiscriminate Weapons
    "S10": ("hate",),  # Hate
    "S11": ("self-harm",),  # Suicide & Self-Harm
    "S12": ("sexual",),  # Sexual Content
    "S13": (),  # Elections
    "S14": ("illicit",),  # Code Interpreter Abuse
}


class ImageURL(WireModel):
    url: str = Field(min_length=1)


class TextInput(WireModel):
    type: Literal["text"]
    text: str


class ImageInput(WireModel):
    type: Literal["image_url"]
    image_url: ImageURL


class ModerationRequest(WireModel):
    input: str | list[str] | list[TextInput | ImageInput] = Field(min_length=1)
    model: str | None = None


def _messages(request: ModerationRequest) -> list[tuple[UserMessage, bool]]:
    """One (message, holds an image) per result the answer must carry."""
    if isinstance(request.input, str):
        return [(UserMessage(content=request.input), False)]
    if all(isinstance(item, str) for item in request.input):
        return [(UserMessage(content=item), False) for item in request.input if isinstance(item, str)]
    parts: list[InterleavedContentItem] = []
    for item in request.input:
        if isinstance(item, TextInput):
            parts.append(TextContentItem(text=item.text))
        elif isinstance(item, ImageInput):
            parts.append(ImageContentItem(url=URL(uri=item.image_url.url)))
        else:
            raise InvalidRequest("input: mix either strings or typed parts, not both")
    return [(UserMessage(content=parts), any(isinstance(p, ImageContentItem) for p in parts))]


def _result(violation: SafetyViolation | None, with_image: bool) -> dict[str, Any]:
    blocked = violation is not None and violation.violation_level == "error"
    codes = (
        [c for c in str(violation.metadata.get("violation_type", "")).split(",") if c] if blocked and violation else []
    )
    flagged_categories = {name for code in codes for name in LLAMA_GUARD_TO_OPENAI.get(code, ())}
    applied = ["text", "image"] if with_image else ["text"]
    return {
        "flagged": blocked,
        "categories": {name: name in flagged_categories for name in CATEGORIES},
        "category_scores": {name: 1.0 if name in flagged_categories else 0.0 for name in CATEGORIES},
        "category_applied_input_types": {
            name: [kind for kind in applied if kind == "text" or name in IMAGE_CATEGORIES] for name in CATEGORIES
        },
        "llama_guard_categories": codes,
    }


class Moderations:
    def __init__(self, safety: Safety | None, shields: Shields, provider_types: dict[str, str]) -> None:
        self.safety = safety
        self.shields = shields
        self.provider_types = provider_types  # provider_id -> provider_type of the safety providers

    async def guard(self, model: str | None) -> Shield:
        shields = await self.shields.list_shields()
        if model is not None:
            for shield in shields:
                if model in (shield.identifier, shield.params.get("text_model"), shield.params.get("vision_model")):
                    return shield
            known = ", ".join(shield.identifier for shield in shields) or "none"
            raise InvalidRequest(f"model: no shield or guard model named '{model}' (shields: {known})")
        for shield in shields:
            if self.provider_types.get(shield.provider_id) == LLAMA_GUARD:
                return shield
        raise InvalidRequest(
            "model: this distribution registers no Llama Guard shield (set SAFETY_MODEL); "
            f"name one of its shields instead: {', '.join(s.identifier for s in shields) or 'none'}"
        )

    async def moderate(self, request: ModerationRequest) -> dict[str, Any]:
        if self.safety is None:
            raise NotImplementedYet("moderations need the safety API, which this distribution does not serve")
        shield = await self.guard(request.model)
        inputs = _messages(request)
        responses = await asyncio.gather(
            *(self.safety.run_shield(RunShieldRequest(shield_id=shield.identifier, messages=[m])) for m, _ in inputs)
        )
        results = [
            _result(response.violation, with_image) for response, (_, with_image) in zip(responses, inputs, strict=True)
        ]
        return {"id": f"modr-{secrets.token_hex(12)}", "model": request.model or shield.identifier, "results": results}


def moderations_router(moderations: Moderations) -> APIRouter:
    router = APIRouter(prefix="/v1", route_class=JsonBodyRoute)

    @router.post("/moderations")
    async def create_moderation(body: ModerationRequest) -> Response:
        return json_response(await moderations.moderate(body))

    return router
