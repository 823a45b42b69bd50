"""inline::transformers: response_format json_schema by constrained decoding, logprobs, usage and
seeds, on the tiny random Llama 3 (whose free choice would never be JSON)."""

from __future__ import annotations

import json
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("lmformatenforcer")
pytest.importorskip("jsonschema")

import jsonschema

from llama_stack.apis.common import SamplingParams, SamplingStrategy, StopReason, UserMessage
from llama_stack.apis.errors import NotImplementedYet
from llama_stack.apis.inference import (
    ChatCompletionRequest,
    CompletionRequest,
    GrammarResponseFormat,
    JsonSchemaResponseFormat,
    LogProbConfig,
)
from llama_stack.models.chat_format import encode_completion, encode_dialog, get_tokenizer
from llama_stack.providers.inference.transformers.inference import TransformersInference
from tests.providers.transformers_support import TINY, chat

PERSON: dict[str, Any] = {
    "type": "object",
    "properties": {
        # lm-format-enforcer skips whitespace right after the opening quote when it counts
        # maxLength, so a bounded string is asked for with a pattern instead.
        "name": {"type": "string", "pattern": "^[a-z]{1,12}$"},
        "age": {"type": "integer"},  # lm-format-enforcer does not enforce minimum / maximum
        "kind": {"type": "string", "enum": ["llama", "alpaca", "vicuna"]},
        "friendly": {"type": "boolean"},
    },
    "required": ["name", "age", "kind", "friendly"],
}


def json_chat(schema: dict[str, Any], max_tokens: int = 150) -> ChatCompletionRequest:
    return chat("Describe a llama.", max_tokens=max_tokens).model_copy(
        update={"response_format": JsonSchemaResponseFormat(json_schema=schema)}
    )


# --- json_schema --------------------------------------------------------------------------------


async def test_json_schema_answers_are_valid_json_under_the_schema(
    transformers_provider: TransformersInference,
) -> None:
    response = await transformers_provider.chat_completion(json_chat(PERSON))
    message = response.completion_message
    assert message.stop_reason == StopReason.end_of_turn, "the model should close the document itself"
    jsonschema.validate(json.loads(str(message.content)), PERSON)


async def test_a_streamed_json_schema_answer_is_the_same_valid_document(
    transformers_provider: TransformersInference,
) -> None:
    request = json_chat(PERSON)
    whole = await transformers_provider.chat_completion(request)
    deltas = [c.event.delta async for c in transformers_provider.chat_completion_stream(request)]
    text = "".join(d for d in deltas if isinstance(d, str))
    assert text == whole.completion_message.content
    jsonschema.validate(json.loads(text), PERSON)


async def test_sampled_answers_follow_the_schema_too(transformers_provider: TransformersInference) -> None:
    schema = {"type": "array", "items": {"type": "number"}, "maxItems": 4}
    for seed in (1, 2, 3):
        request = json_chat(schema).model_copy(
            update={"sampling_params": SamplingParams(strategy=SamplingStrategy.top_p, temperature=1.0, seed=seed)}
        )
        message = (await transformers_provider.chat_completion(request)).completion_message
        jsonschema.validate(json.loads(str(message.content)), schema)


async def test_completion_honours_json_schema(transformers_provider: TransformersInference) -> None:
    request = CompletionRequest(
        model_id=TINY,
        content="A llama:",
        sampling_params=SamplingParams(max_tokens=150),
        response_format=JsonSchemaResponseFormat(json_schema=PERSON),
    )
    response = await transformers_provider.completion(request)
    assert response.stop_reason == StopReason.end_of_turn
    jsonschema.validate(json.loads(response.content), PERSON)


async def test_a_grammar_response_format_is_not_implemented_and_says_so(
    transformers_provider: TransformersInference,
) -> None:
    request = chat("Hi").model_copy(update={"response_format": GrammarResponseFormat(bnf={"root": "x"})})
    with pytest.raises(NotImplementedYet, match="grammar"):
        transformers_provider.chat_completion_stream(request)


# --- logprobs and usage -------------------------------------------------------------------------


async def test_logprobs_give_the_top_k_tokens_of_every_generated_token(
    transformers_provider: TransformersInference,
) -> None:
    request = chat("Hello there", max_tokens=6).model_copy(update={"logprobs": LogProbConfig(top_k=3)})
    response = await transformers_provider.chat_completion(request)
    assert response.logprobs is not None and len(response.logprobs) == 6
    tokens = get_tokenizer().encode(str(response.completion_message.content), bos=False, eos=False)
    for step in response.logprobs:
        assert 1 <= len(step.logprobs_by_token) <= 3
        assert all(-100.0 < value <= 0.0 for value in step.logprobs_by_token.values())
    # Greedy decoding picks each step's most likely token: the best entry is the token generated.
    best = "".join(max(step.logprobs_by_token, key=step.logprobs_by_token.__getitem__) for step in response.logprobs)
    assert best == get_tokenizer().decode(tokens)


async def test_streamed_logprobs_cover_every_token_in_order(transformers_provider: TransformersInference) -> None:
    request = chat("Hello there", max_tokens=6).model_copy(update={"logprobs": LogProbConfig(top_k=2)})
    whole = await transformers_provider.chat_completion(request)
    streamed = [
        lp async for c in transformers_provider.chat_completion_stream(request) for lp in (c.event.logprobs or [])
    ]
    assert streamed == whole.logprobs
    chunks = [
        c
        async for c in transformers_provider.completion_stream(
            CompletionRequest(
                model_id=TINY,
                content="Once",
                sampling_params=SamplingParams(max_tokens=5),
                logprobs=LogProbConfig(top_k=1),
            )
        )
    ]
    assert sum(len(c.logprobs or []) for c in chunks) == 5


async def test_without_logprobs_none_are_sent(transformers_provider: TransformersInference) -> None:
    response = await transformers_provider.chat_completion(chat("Hello there", max_tokens=3))
    assert response.logprobs is None


async def test_usage_counts_prompt_and_generated_tokens(transformers_provider: TransformersInference) -> None:
    request = chat("Count my tokens", max_tokens=5)
    response = await transformers_provider.chat_completion(request)
    assert response.usage is not None
    assert response.usage.prompt_tokens == len(encode_dialog(request.messages, model_id=TINY))
    assert response.usage.completion_tokens == 5
    events = [c.event async for c in transformers_provider.chat_completion_stream(request)]
    assert events[-1].usage == response.usage

    completion = CompletionRequest(model_id=TINY, content="Once", sampling_params=SamplingParams(max_tokens=4))
    done = await transformers_provider.completion(completion)
    assert done.usage is not None and done.usage.prompt_tokens == len(encode_completion("Once", model_id=TINY))
    last = [c async for c in transformers_provider.completion_stream(completion)][-1]
    assert last.usage == done.usage and done.usage.completion_tokens == 4


async def test_a_seed_makes_sampling_reproducible(transformers_provider: TransformersInference) -> None:
    def sampled(seed: int) -> ChatCompletionRequest:
        params = SamplingParams(strategy=SamplingStrategy.top_p, temperature=1.5, top_p=1.0, max_tokens=12, seed=seed)
        return ChatCompletionRequest(model_id=TINY, messages=[UserMessage(content="Pick")], sampling_params=params)

    first = (await transformers_provider.chat_completion(sampled(7))).completion_message.content
    again = (await transformers_provider.chat_completion(sampled(7))).completion_message.content
    other = (await transformers_provider.chat_completion(sampled(8))).completion_message.content
    assert first == again
    assert first != other
