"""inline::transformers with tools: definitions rendered into the prompt, the format checked
against the model, and tool calls parsed and streamed end to end on a real model: the tiny
Llama trained to answer with a get_weather call (tests/providers/tiny_tools.py)."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from llama_stack.apis.common import (
    BuiltinTool,
    CompletionMessage,
    SamplingParams,
    StopReason,
    ToolCall,
    ToolChoice,
    ToolDefinition,
    ToolParamDefinition,
    ToolPromptFormat,
    ToolResponseMessage,
    UserMessage,
)
from llama_stack.apis.errors import InvalidRequest
from llama_stack.apis.inference import (
    ChatCompletionEventType,
    ChatCompletionRequest,
    ToolCallDelta,
    ToolCallParseStatus,
)
from llama_stack.distribution.provider import Deps
from llama_stack.models.chat_format import encode_dialog
from llama_stack.providers.inference.transformers.inference import TransformersInference
from tests.providers.transformers_support import TINY, model

WEATHER = ToolDefinition(
    tool_name="get_weather",
    description="Current weather in a city",
    parameters={"city": ToolParamDefinition(param_type="string", description="City name")},
)
PARIS = [("get_weather", {"city": "Paris"})]


def tool_chat(model_id: str, **fields: Any) -> ChatCompletionRequest:
    fields.setdefault("sampling_params", SamplingParams(max_tokens=40))
    fields.setdefault("tools", [WEATHER])
    return ChatCompletionRequest(
        model_id=model_id, messages=[UserMessage(content="What is the weather in Paris?")], **fields
    )


@pytest.fixture(scope="module")
async def tool_provider(tiny_tool_model_dir: Path, tiny_model_root: Path) -> AsyncIterator[tuple[Any, str]]:
    from llama_stack.providers.inference.transformers import TransformersInferenceConfig, get_provider_impl

    config = TransformersInferenceConfig(device="cpu", tiny_model_dir=str(tiny_model_root), max_seq_len=1024)
    provider = await get_provider_impl(config, Deps())
    resource_id = str(tiny_tool_model_dir)
    await provider.register_model(model(resource_id))
    yield provider, resource_id
    await provider.shutdown()


# --- prompts and formats on the tiny random model -----------------------------------------------


async def test_tools_are_rendered_into_the_prompt(transformers_provider: TransformersInference) -> None:
    request = tool_chat(TINY, sampling_params=SamplingParams(max_tokens=2))
    response = await transformers_provider.chat_completion(request)
    assert response.usage is not None
    with_tools = len(encode_dialog(request.messages, model_id=TINY, tools=[WEATHER]))
    assert response.usage.prompt_tokens == with_tools > len(encode_dialog(request.messages, model_id=TINY)) + 100


async def test_builtin_tools_are_accepted(transformers_provider: TransformersInference) -> None:
    tools = [ToolDefinition(tool_name=BuiltinTool.brave_search), ToolDefinition(tool_name="code_interpreter")]
    request = tool_chat(TINY, tools=tools, sampling_params=SamplingParams(max_tokens=2))
    assert (await transformers_provider.chat_completion(request)).completion_message.role == "assistant"


async def test_a_format_the_model_family_does_not_support_is_refused_on_the_call(
    transformers_provider: TransformersInference, tiny_model_dir: Path, tmp_path: Path
) -> None:
    llama31 = tmp_path / "Llama-3.1-8B-Instruct"  # the tiny weights under a Llama 3.1 name
    shutil.copytree(tiny_model_dir, llama31)
    await transformers_provider.register_model(model(str(llama31)))
    try:
        request = tool_chat(str(llama31), tool_prompt_format=ToolPromptFormat.python_list)
        with pytest.raises(InvalidRequest, match=r"'python_list' is not supported by model .*use one of: json"):
            transformers_provider.chat_completion_stream(request)
        ok = tool_chat(str(llama31), tool_prompt_format=ToolPromptFormat.function_tag)
        ok.sampling_params = SamplingParams(max_tokens=2)
        assert (await transformers_provider.chat_completion(ok)).completion_message.role == "assistant"
    finally:
        await transformers_provider.unregister_model(str(llama31))


# --- tool calls end to end on the trained tiny model --------------------------------------------


async def test_a_tool_call_is_parsed_with_end_of_message(tool_provider: tuple[Any, str]) -> None:
    provider, model_id = tool_provider
    message = (await provider.chat_completion(tool_chat(model_id))).completion_message
    assert [(c.tool_name, c.arguments) for c in message.tool_calls] == PARIS
    assert message.content == "" and message.stop_reason == StopReason.end_of_message
    assert uuid.UUID(message.tool_calls[0].call_id).version == 4


async def test_a_streamed_tool_call_arrives_as_tool_call_deltas_while_generated(tool_provider: tuple[Any, str]) -> None:
    provider, model_id = tool_provider
    events = [chunk.event async for chunk in provider.chat_completion_stream(tool_chat(model_id))]
    assert events[0].event_type == ChatCompletionEventType.start
    assert events[-1].event_type == ChatCompletionEventType.complete
    assert events[-1].stop_reason == StopReason.end_of_message
    deltas = [e.delta for e in events[1:-1]]
    assert all(isinstance(d, ToolCallDelta) for d in deltas), "no text before or around the call"
    tool_deltas = [d for d in deltas if isinstance(d, ToolCallDelta)]
    statuses = [d.parse_status for d in tool_deltas]
    # The call streams as it is generated: one in_progress delta per token, the python tag first.
    pieces = [str(d.content) for d in tool_deltas if d.parse_status == ToolCallParseStatus.in_progress]
    assert pieces[0] == "<|python_tag|>" and len(pieces) == 8
    assert statuses == ["started", *["in_progress"] * 8, "success"]
    assert "".join(pieces) == '<|python_tag|>[get_weather(city="Paris")]'
    call = tool_deltas[-1].content
    assert isinstance(call, ToolCall) and (call.tool_name, call.arguments) == PARIS[0]
    assert events[-1].usage is not None and events[-1].usage.completion_tokens == 8  # python tag + call


async def test_without_tools_the_same_output_stays_text(tool_provider: tuple[Any, str]) -> None:
    provider, model_id = tool_provider
    message = (await provider.chat_completion(tool_chat(model_id, tools=[]))).completion_message
    assert message.tool_calls == []
    assert message.content == '<|python_tag|>[get_weather(city="Paris")]'


async def test_tool_choice_required_and_a_tool_result_turn_still_work(tool_provider: tuple[Any, str]) -> None:
    provider, model_id = tool_provider
    required = await provider.chat_completion(tool_chat(model_id, tool_choice=ToolChoice.required))
    calls = required.completion_message.tool_calls
    assert [(c.tool_name, c.arguments) for c in calls] == PARIS
    followup = tool_chat(model_id)
    followup.messages += [
        CompletionMessage(content="", stop_reason=StopReason.end_of_message, tool_calls=calls),
        ToolResponseMessage(call_id=calls[0].call_id, tool_name="get_weather", content="sunny, 22 C"),
    ]
    # The trained model knows one answer only; what matters is that the history encodes and runs.
    response = await provider.chat_completion(followup)
    assert response.usage is not None
    assert response.usage.prompt_tokens > (required.usage.prompt_tokens if required.usage else 0)
