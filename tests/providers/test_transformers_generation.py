"""inline::transformers on the tiny random Llama 3: generation, streaming, stop tokens and
sampling, on a real (tiny) model. It proves mechanics only; its text is gibberish by design."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from pathlib import Path
from typing import Any

from llama_stack.apis.common import (
    SamplingParams,
    SamplingStrategy,
    StopReason,
    UserMessage,
)
from llama_stack.apis.inference import (
    ChatCompletionEventType,
    CompletionRequest,
)
from llama_stack.models.chat_format import (
    StopTokens,
    decode_tokens,
    encode_completion,
    encode_dialog,
    llama3_stop_tokens,
)
from llama_stack.models.tiny import ensure_tiny_model
from llama_stack.providers.inference.transformers import TransformersInferenceConfig
from llama_stack.providers.inference.transformers.engine import GenerationRequest
from llama_stack.providers.inference.transformers.inference import TransformersInference
from llama_stack.providers.inference.transformers.sampling import SamplingConfig
from tests.providers.transformers_support import EOM, EOT, TINY, TINY_CONTEXT, chat, hf_greedy, load_hf_tiny, model


@pytest.fixture(scope="module")
def hf_tiny(tiny_model_dir: Path) -> Any:
    return load_hf_tiny(tiny_model_dir)


# --- generation ---------------------------------------------------------------------------------


async def test_greedy_chat_equals_transformers_generate_on_the_chat_format_prompt(
    transformers_provider: TransformersInference, hf_tiny: Any
) -> None:
    request = chat("Hello there", max_tokens=16)
    response = await transformers_provider.chat_completion(request)
    expected = hf_greedy(hf_tiny, encode_dialog(request.messages, model_id=TINY), 16)
    assert response.completion_message.content == decode_tokens(expected)
    assert response.completion_message.stop_reason == StopReason.out_of_tokens


async def test_greedy_generation_is_deterministic(transformers_provider: TransformersInference) -> None:
    first = await transformers_provider.chat_completion(chat("Tell me a joke", max_tokens=20))
    second = await transformers_provider.chat_completion(chat("Tell me a joke", max_tokens=20))
    assert first.completion_message.content
    assert first.completion_message.content == second.completion_message.content


async def test_max_tokens_gives_exactly_that_many_tokens_and_out_of_tokens(
    transformers_provider: TransformersInference, hf_tiny: Any
) -> None:
    request = CompletionRequest(
        model_id=TINY, content="The capital of France is", sampling_params=SamplingParams(max_tokens=5)
    )
    engine = transformers_provider.loaded_model(TINY).engine
    before = engine.stats().generated_tokens
    response = await transformers_provider.completion(request)
    assert engine.stats().generated_tokens - before == 5
    assert response.stop_reason == StopReason.out_of_tokens
    six = hf_greedy(hf_tiny, encode_completion(request.content, model_id=TINY), 6)
    assert response.content == decode_tokens(six[:5]) != decode_tokens(six)


async def test_max_tokens_zero_generates_up_to_the_context(transformers_provider: TransformersInference) -> None:
    assert transformers_provider.loaded_model(TINY).context_length == TINY_CONTEXT
    request = CompletionRequest(model_id=TINY, content="Count:", sampling_params=SamplingParams(max_tokens=0))
    engine = transformers_provider.loaded_model(TINY).engine
    before = engine.stats().generated_tokens
    response = await transformers_provider.completion(request)
    prompt_len = len(encode_completion("Count:", model_id=TINY))
    assert response.stop_reason == StopReason.out_of_tokens
    assert engine.stats().generated_tokens - before == TINY_CONTEXT - prompt_len


async def test_chat_stream_concatenates_to_the_non_streaming_text(
    transformers_provider: TransformersInference,
) -> None:
    request = chat("Write a haiku about the sea", max_tokens=24)
    chunks = [chunk async for chunk in transformers_provider.chat_completion_stream(request)]
    events = [chunk.event for chunk in chunks]
    assert events[0].event_type == ChatCompletionEventType.start and events[0].delta == ""
    assert events[-1].event_type == ChatCompletionEventType.complete
    assert events[-1].stop_reason == StopReason.out_of_tokens
    middle = events[1:-1]
    assert len(middle) > 1 and all(e.event_type == ChatCompletionEventType.progress for e in middle)
    streamed = "".join(e.delta for e in middle if isinstance(e.delta, str))
    response = await transformers_provider.chat_completion(request)
    assert streamed == response.completion_message.content


async def test_completion_stream_concatenates_and_the_last_chunk_has_the_stop_reason(
    transformers_provider: TransformersInference,
) -> None:
    request = CompletionRequest(
        model_id=TINY, content="Once upon a time", sampling_params=SamplingParams(max_tokens=10)
    )
    chunks = [chunk async for chunk in transformers_provider.completion_stream(request)]
    assert [c.stop_reason for c in chunks[:-1]] == [None] * (len(chunks) - 1)
    assert chunks[-1].stop_reason == StopReason.out_of_tokens
    assert "".join(c.delta for c in chunks) == (await transformers_provider.completion(request)).content


async def test_stop_tokens_end_the_turn_and_never_reach_the_text(transformers_provider: TransformersInference) -> None:
    """Through the engine seam with the real model: make the 4th greedy token a stop token."""
    engine = transformers_provider.loaded_model(TINY).engine
    prompt = encode_dialog([UserMessage(content="Hello there")], model_id=TINY)

    async def run(stop_tokens: StopTokens) -> tuple[list[int], StopReason]:
        request = GenerationRequest(prompt, max_new_tokens=8, sampling=SamplingConfig(), stop_tokens=stop_tokens)
        tokens, reason = [], None
        async for event in engine.submit(request).events():
            if hasattr(event, "token_id"):
                tokens.append(event.token_id)
            else:
                reason = event.stop_reason
        assert reason is not None
        return tokens, reason

    free, reason = await run(llama3_stop_tokens())
    assert reason == StopReason.out_of_tokens and len(free) == 8
    stop = free[3]
    assert stop not in free[:3], "precondition: the chosen token appears first at position 4"
    tokens, reason = await run(StopTokens(end_of_turn=frozenset({stop}), end_of_message=frozenset()))
    assert (tokens, reason) == (free[:3], StopReason.end_of_turn)
    tokens, reason = await run(StopTokens(end_of_turn=frozenset(), end_of_message=frozenset({stop})))
    assert (tokens, reason) == (free[:3], StopReason.end_of_message)


@pytest.mark.parametrize(("token", "reason"), [(EOT, StopReason.end_of_turn), (EOM, StopReason.end_of_message)])
async def test_a_model_that_emits_a_llama3_stop_token_ends_with_its_stop_reason(
    tmp_path: Path, token: int, reason: StopReason
) -> None:
    path = ensure_tiny_model(tmp_path, f"favours-{token}", favour_token_id=token)
    provider = TransformersInference(TransformersInferenceConfig(device="cpu", hf_cache_dir=str(tmp_path)))
    await provider.register_model(model(str(path)))
    try:
        request = chat("Hello").model_copy(update={"model_id": str(path)})
        chunks = [c async for c in provider.chat_completion_stream(request)]
        assert chunks[-1].event.stop_reason == reason
        response = await provider.chat_completion(request)
        assert response.completion_message.stop_reason == reason
        assert response.completion_message.content == ""  # the stop token is not text
    finally:
        await provider.shutdown()


# --- sampling -----------------------------------------------------------------------------------


async def test_temperature_sampling_follows_the_seed_and_stays_valid(
    transformers_provider: TransformersInference,
) -> None:
    engine = transformers_provider.loaded_model(TINY).engine
    prompt = encode_dialog([UserMessage(content="Pick a word")], model_id=TINY)
    sampling = SamplingConfig(temperature=1.0, top_p=0.9)

    async def sample(seed: int) -> list[int]:
        request = GenerationRequest(prompt, 12, sampling, llama3_stop_tokens(), seed=seed)
        return [e.token_id async for e in engine.submit(request).events() if hasattr(e, "token_id")]

    first, again, other = await sample(1), await sample(1), await sample(2)
    assert first == again
    assert first != other
    assert all(len(run) == 12 and all(0 <= t < 128256 for t in run) for run in (first, other))


async def test_unseeded_temperature_requests_differ(transformers_provider: TransformersInference) -> None:
    request = chat("Pick a word", max_tokens=12, strategy=SamplingStrategy.top_p, temperature=1.0, top_p=0.95)
    first = await transformers_provider.chat_completion(request)
    second = await transformers_provider.chat_completion(request)
    assert first.completion_message.content != second.completion_message.content
    assert first.completion_message.stop_reason == StopReason.out_of_tokens


async def test_top_k_of_one_is_greedy(transformers_provider: TransformersInference) -> None:
    greedy = await transformers_provider.chat_completion(chat("Hello there"))
    top1 = await transformers_provider.chat_completion(
        chat("Hello there", strategy=SamplingStrategy.top_k, temperature=1.5, top_k=1)
    )
    assert top1.completion_message.content == greedy.completion_message.content


async def test_a_strong_repetition_penalty_never_repeats_a_token(transformers_provider: TransformersInference) -> None:
    engine = transformers_provider.loaded_model(TINY).engine
    prompt = encode_dialog([UserMessage(content="Hello there")], model_id=TINY)
    request = GenerationRequest(prompt, 40, SamplingConfig(repetition_penalty=100.0), llama3_stop_tokens())
    tokens = [e.token_id async for e in engine.submit(request).events() if hasattr(e, "token_id")]
    assert len(tokens) == 40
    assert len(set(tokens)) == 40 and not set(tokens) & set(prompt)
