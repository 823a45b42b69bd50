"""API requests turned into what the engine runs: prompt tokens, images, sampling, constraints.

Validation that needs no I/O happens in `plan_chat` / `plan_completion`, on the call itself, so
a bad request fails before a stream starts. Fetching image URLs and encoding the prompt happen
in `encode_chat`, inside the generation (they may wait on the network).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field, replace
from typing import Any

from llama_stack.apis.common import (
    Message,
    SamplingParams,
    ToolChoice,
    ToolDefinition,
    ToolPromptFormat,
    UserMessage,
    content_has_image,
)
from llama_stack.apis.inference import ChatCompletionRequest, CompletionRequest, LogProbConfig
from llama_stack.distribution.outbound import OutboundPolicy
from llama_stack.models.chat_format import text_only_error
from llama_stack.models.images import has_remote_image, inline_images
from llama_stack.models.tool_calls import check_tool_prompt_format

from .prompts import PromptFormat
from .structured import json_schema_of
from .vision import vision_inputs


@dataclass(frozen=True)
class GenerationPlan:
    """Everything about a request but its prompt tokens, checked and normalised."""

    model_id: str
    sampling: SamplingParams
    schema: dict[str, Any] | None = None  # response_format json_schema to enforce
    logprobs_top_k: int = 0
    messages: list[Message] = field(default_factory=list)
    tools: list[ToolDefinition] = field(default_factory=list)
    tool_format: ToolPromptFormat | None = None
    tool_choice: ToolChoice = ToolChoice.auto

    @property
    def parse_tools(self) -> bool:
        return bool(self.tools)


def _top_k(config: LogProbConfig | None) -> int:
    return config.top_k if config is not None else 0


def _has_image(messages: list[Message]) -> bool:
    return any(
        content_has_image(m.content)
        or (isinstance(m, UserMessage) and m.context is not None and content_has_image(m.context))
        for m in messages
    )


def plan_chat(request: ChatCompletionRequest, *, vision: bool) -> GenerationPlan:
    if not vision and _has_image(request.messages):
        raise text_only_error(request.model_id)
    tool_format = (
        check_tool_prompt_format(request.model_id, request.tool_prompt_format)
        if request.tools
        else request.tool_prompt_format
    )
    return GenerationPlan(
        model_id=request.model_id,
        sampling=request.sampling_params,
        schema=json_schema_of(request.response_format, request.model_id),
        logprobs_top_k=_top_k(request.logprobs),
        messages=list(request.messages),
        tools=list(request.tools),
        tool_format=tool_format,
        tool_choice=request.tool_choice,
    )


def plan_completion(request: CompletionRequest) -> GenerationPlan:
    if content_has_image(request.content):
        raise text_only_error(request.model_id)  # completion takes text; images go through chat
    return GenerationPlan(
        model_id=request.model_id,
        sampling=request.sampling_params,
        schema=json_schema_of(request.response_format, request.model_id),
        logprobs_top_k=_top_k(request.logprobs),
    )


def response_format_message(schema: dict[str, Any]) -> UserMessage:
    """Tells the model the schema its answer must follow; decoding enforces it regardless."""
    return UserMessage(content=f"Please respond in JSON format with the schema: {json.dumps(schema)}")


@dataclass(frozen=True)
class EncodedChat:
    tokens: list[int]
    images: list[Any]  # PIL images, in prompt order

    async def model_inputs(self, image_processor: Any | None) -> Any:
        """The model's extra prefill inputs (processed images), or None."""
        if image_processor is None or not self.images:
            return None
        return await asyncio.to_thread(vision_inputs, image_processor, self.tokens, self.images)


def encode_chat_now(plan: GenerationPlan, prompts: PromptFormat, *, vision: bool) -> EncodedChat:
    """The prompt of a planned chat whose images are all inline (see `needs_fetch`)."""
    messages = plan.messages
    if plan.schema is not None:
        messages = [*messages, response_format_message(plan.schema)]
    prompt = prompts.encode_dialog(
        messages,
        model_id=plan.model_id,
        tools=plan.tools,
        tool_prompt_format=plan.tool_format,
        tool_choice=plan.tool_choice,
        allow_images=vision,
    )
    return EncodedChat(prompt.tokens, prompt.images)


def needs_fetch(plan: GenerationPlan) -> bool:
    return has_remote_image(plan.messages)


async def encode_chat(
    plan: GenerationPlan, prompts: PromptFormat, *, vision: bool, outbound: OutboundPolicy | None = None
) -> EncodedChat:
    """`encode_chat_now` after downloading the http(s) images under the outbound policy."""
    fetched = replace(plan, messages=await inline_images(plan.messages, outbound))
    return encode_chat_now(fetched, prompts, vision=vision)
