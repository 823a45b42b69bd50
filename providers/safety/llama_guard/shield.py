"""The Llama Guard 3 shield: asks a guard model, through the inference router, whether the last
message of a conversation is safe, and turns its verdict into a SafetyViolation."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import ValidationError

from llama_stack.apis.common import (
    SafetyViolation,
    SamplingParams,
    SamplingStrategy,
    TextContentItem,
    UserMessage,
    content_text,
)
from llama_stack.apis.errors import InvalidRequest, ModelNotFound, ProviderError
from llama_stack.apis.inference import ChatCompletionRequest
from llama_stack.apis.safety import RunShieldRequest, RunShieldResponse
from llama_stack.apis.shields import Shield

from .config import LlamaGuardConfig
from .prompt import Policy, build_prompt, conversation, last_image

log = logging.getLogger(__name__)

_CODE = re.compile(r"^S\d{1,2}$")


@dataclass(frozen=True)
class Verdict:
    kind: Literal["safe", "unsafe", "unparsable"]
    codes: list[str] = field(default_factory=list)
    unrecognized: list[str] = field(default_factory=list)
    reason: str = ""


def read_verdict(output: str) -> Verdict:
    """The guard is asked for 'safe' or 'unsafe' on the first line and, if unsafe, a comma-separated
    list of codes on the second. Case and stray whitespace are forgiven; anything else is
    unparsable. An `unsafe` whose codes cannot be read is still unsafe: the guard said so."""
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    if not lines:
        return Verdict("unparsable", reason="the guard model answered nothing")
    first = lines[0].lower().rstrip(".")
    if first == "safe":
        return Verdict("safe")
    if first != "unsafe":
        return Verdict("unparsable", reason=f"the first line is neither 'safe' nor 'unsafe': {lines[0][:80]!r}")
    tokens = [token.strip() for token in ",".join(lines[1:2]).split(",") if token.strip()]
    codes = list(dict.fromkeys(token.upper() for token in tokens if _CODE.match(token.upper())))
    unrecognized = [token for token in tokens if not _CODE.match(token.upper())]
    return Verdict("unsafe", codes=codes, unrecognized=unrecognized)


class LlamaGuardShield:
    def __init__(self, config: LlamaGuardConfig, inference: Any) -> None:
        self.config = config
        self.inference = inference
        # provider_resource_id -> the config with that shield's params applied
        self.settings: dict[str, LlamaGuardConfig] = {}

    async def register_shield(self, shield: Shield) -> Shield:
        self.settings[shield.provider_resource_id] = self._settings_for(shield)
        await self._require_model(shield.identifier, self.settings[shield.provider_resource_id].text_model)
        return shield

    async def unregister_shield(self, identifier: str) -> None:
        self.settings.pop(identifier, None)

    def _settings_for(self, shield: Shield) -> LlamaGuardConfig:
        try:
            return LlamaGuardConfig.model_validate({**self.config.model_dump(), **shield.params})
        except ValidationError as e:
            problem = e.errors()[0]
            where = ".".join(str(part) for part in problem["loc"])
            known = ", ".join(LlamaGuardConfig.model_fields)
            raise InvalidRequest(
                f"shield '{shield.identifier}': params.{where}: {problem['msg']} (Llama Guard params: {known})"
            ) from e

    async def _require_model(self, shield_id: str, model_id: str) -> None:
        # The router's models table tells us at registration whether the guard model exists, so a
        # run.yaml that forgot it fails at startup rather than on the first request.
        models = getattr(self.inference, "models", None)
        find = getattr(models, "find", None)
        if find is not None and await find(model_id) is None:
            raise InvalidRequest(
                f"shield '{shield_id}': guard model '{model_id}' is not registered; add it under `models` "
                "(served by an inference provider) or set text_model"
            )

    async def run_shield(self, request: RunShieldRequest) -> RunShieldResponse:
        settings = self.settings.get(request.shield_id, self.config)
        turns = conversation(request.messages)
        if not turns:
            return RunShieldResponse()  # only system prompts: nothing a guard judges
        image = last_image(request.messages)
        if image is not None and settings.vision_model is None:
            raise InvalidRequest(
                f"shield '{request.shield_id}' cannot check images: its Llama Guard has no vision_model"
            )
        model = settings.vision_model if image is not None and settings.vision_model else settings.text_model
        policy = Policy.for_model(model, settings.excluded_categories, settings.custom_categories)
        prompt = build_prompt(turns, policy, with_image=image is not None)
        content: Any = [image, TextContentItem(text=prompt)] if image is not None else prompt
        output = await self._ask(model, content, settings.max_tokens)
        violation = _violation(read_verdict(output), policy, settings, model, output)
        return RunShieldResponse(violation=violation)

    async def _ask(self, model: str, content: Any, max_tokens: int) -> str:
        request = ChatCompletionRequest(
            model_id=model,
            messages=[UserMessage(content=content)],
            sampling_params=SamplingParams(strategy=SamplingStrategy.greedy, max_tokens=max_tokens),
        )
        try:
            response = await self.inference.chat_completion(request)
        except ModelNotFound as e:
            raise ProviderError(
                f"Llama Guard model '{model}' is not registered with the inference API; add it under `models`"
            ) from e
        return content_text(response.completion_message.content)


def _violation(
    verdict: Verdict, policy: Policy, settings: LlamaGuardConfig, model: str, output: str
) -> SafetyViolation | None:
    if verdict.kind == "safe":
        return None
    if verdict.kind == "unparsable":
        log.warning("Llama Guard model %s gave an unparsable answer: %s", model, verdict.reason)
        blocking = settings.on_unparsable == "block"
        return SafetyViolation(
            violation_level="error" if blocking else "warn",
            user_message="I can't help with that: the safety check could not be completed."
            if blocking
            else "The safety check could not be completed; the content was let through.",
            metadata={
                "violation_type": "unparsable",
                "reason": verdict.reason,
                "guard_output": output[:200],
                "guard_model": model,
            },
        )
    reported = [code for code in verdict.codes if code not in settings.excluded_categories]
    if verdict.codes and not reported:
        return None  # the guard only named categories this shield was told to ignore
    names = [policy.name_of(code) for code in reported]
    flagged = ", ".join(f"{code}: {name}" for name, code in zip(names, reported, strict=True))
    metadata: dict[str, Any] = {
        "violation_type": ",".join(reported) or "unspecified",
        "categories": names,
        "guard_model": model,
    }
    if verdict.unrecognized:
        metadata["unrecognized"] = verdict.unrecognized
    return SafetyViolation(
        violation_level="error",
        user_message=f"I can't help with that: it was flagged as unsafe ({flagged or 'unspecified category'}).",
        metadata=metadata,
    )
