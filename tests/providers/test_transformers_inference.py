"""inline::transformers on the tiny random Llama 3: prompting, generation, streaming, stop tokens,
sampling, cancellation, batching and weight resolution, all on a real (tiny) model.

The tiny model proves mechanics only; its text is gibberish by design.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

import torch

from llama_stack.apis.common import (
    CompletionMessage,
    ImageContentItem,
    Message,
    SamplingParams,
    SamplingStrategy,
    StopReason,
    SystemMessage,
    TextContentItem,
    ToolCall,
    ToolResponseMessage,
    UserMessage,
    content_text,
)
from llama_stack.apis.errors import InvalidRequest, ModelNotFound
from llama_stack.apis.inference import (
    ChatCompletionEventType,
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingsRequest,
)
from llama_stack.apis.models import Model
from llama_stack.models.chat_format import (
    StopTokens,
    decode_tokens,
    encode_completion,
    encode_dialog,
    get_tokenizer,
    llama3_stop_tokens,
)
from llama_stack.models.tiny import TINY_MODEL_ID, ensure_tiny_model
from llama_stack.providers.inference.transformers import TransformersInferenceConfig
from llama_stack.providers.inference.transformers.engine import GenerationRequest
from llama_stack.providers.inference.transformers.inference import TransformersInference
from llama_stack.providers.inference.transformers.sampling import SamplingConfig

TINY = TINY_MODEL_ID
TINY_CONTEXT = 256  # the session provider's max_seq_len (conftest.py)
EOT, EOM = 128009, 128008


def chat(text: str, max_tokens: int = 12, **sampling: Any) -> ChatCompletionRequest:
    return ChatCompletionRequest(
        model_id=TINY,
        messages=[UserMessage(content=text)],
        sampling_params=SamplingParams(max_tokens=max_tokens, **sampling),
    )


def model(resource_id: str) -> Model:
    return Model(identifier=resource_id, provider_resource_id=resource_id, provider_id="transformers")


@pytest.fixture(scope="module")
def hf_tiny(tiny_model_dir: Path) -> Any:
    """The same tiny checkpoint loaded by plain transformers, to compare against."""
    from transformers import AutoModelForCausalLM

    hf_model: Any = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    return hf_model.eval()


def hf_greedy(hf_model: Any, prompt: list[int], new_tokens: int) -> list[int]:
    with torch.no_grad():
        out = hf_model.generate(
            torch.tensor([prompt]), max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False
        )
    return [int(t) for t in out[0, len(prompt) :]]


# --- packaging and prompts ----------------------------------------------------------------------


def test_importing_the_provider_package_does_not_import_torch() -> None:
    code = (
        "import sys, llama_stack.providers.inference.transformers as p; "
        "assert p.provider_spec.provider_type == 'inline::transformers'; "
        "heavy = [m for m in ('torch', 'transformers') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_chat_prompt_is_the_llama3_chat_format() -> None:
    messages: list[Message] = [SystemMessage(content="Be brief."), UserMessage(content="Hi there")]
    tokens = encode_dialog(messages, model_id=TINY)
    assert tokens[:2] == [128000, 128006]  # <|begin_of_text|><|start_header_id|>
    assert get_tokenizer().decode(tokens) == (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )


def test_history_with_tool_calls_and_tool_results_is_encoded() -> None:
    messages: list[Message] = [
        UserMessage(content="Weather in Paris?"),
        CompletionMessage(
            content="",
            stop_reason=StopReason.end_of_message,
            tool_calls=[ToolCall(call_id="c1", tool_name="get_weather", arguments={"city": "Paris"})],
        ),
        ToolResponseMessage(call_id="c1", tool_name="get_weather", content="sunny"),
    ]
    text = get_tokenizer().decode(encode_dialog(messages, model_id=TINY))
    assert '{"type": "function", "name": "get_weather", "parameters": {"city": "Paris"}}<|eom_id|>' in text
    assert text.endswith(
        "<|start_header_id|>ipython<|end_header_id|>\n\nsunny<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
    )


def test_completion_prompt_is_begin_of_text_then_the_text() -> None:
    tokens = encode_completion("Once upon a time", model_id=TINY)
    assert tokens[0] == 128000
    assert get_tokenizer().decode(tokens[1:]) == "Once upon a time"


def test_stream_decoder_never_splits_a_utf8_character() -> None:
    from llama_stack.models.chat_format import StreamDecoder

    text = "🦙🦙 naïve 日本語"
    tokens = get_tokenizer().encode(text, bos=False, eos=False)
    piece = get_tokenizer().model.decode_single_token_bytes
    assert any(_not_utf8(piece(t)) for t in tokens), "precondition: some token is a partial character"
    decoder = StreamDecoder()
    deltas = [decoder.feed(t) for t in tokens] + [decoder.flush()]
    assert "".join(deltas) == text
    assert all("\ufffd" not in delta for delta in deltas)


def _not_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


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


# --- cancellation, concurrency, the event loop --------------------------------------------------


async def _wait_until_idle(engine: Any) -> None:
    deadline = time.monotonic() + 5.0
    while engine.stats().active or engine.stats().waiting:
        assert time.monotonic() < deadline, f"engine still busy: {engine.stats()}"
        await asyncio.sleep(0.01)


async def test_closing_a_stream_stops_generation(transformers_provider: TransformersInference) -> None:
    engine = transformers_provider.loaded_model(TINY).engine
    await _wait_until_idle(engine)
    before = engine.stats().generated_tokens
    stream = transformers_provider.chat_completion_stream(chat("Go on and on", max_tokens=0))
    seen = 0
    async for chunk in stream:
        seen += chunk.event.event_type == ChatCompletionEventType.progress
        if seen == 3:
            break
    await stream.aclose()  # what the server does when the HTTP client goes away
    await _assert_generation_stopped(engine, before)


async def _assert_generation_stopped(engine: Any, tokens_before: int) -> None:
    await _wait_until_idle(engine)
    stopped_at = engine.stats().generated_tokens
    await asyncio.sleep(0.2)
    assert engine.stats().generated_tokens == stopped_at, "tokens were still being generated"
    # Uncancelled, the request would have run to the context limit (about TINY_CONTEXT tokens).
    assert stopped_at - tokens_before < TINY_CONTEXT // 2, "generation ran on long after the consumer left"


async def test_cancelling_the_consumer_task_stops_generation(transformers_provider: TransformersInference) -> None:
    engine = transformers_provider.loaded_model(TINY).engine
    await _wait_until_idle(engine)
    before = engine.stats().generated_tokens
    first_chunk = asyncio.Event()

    async def consume() -> None:
        async for _chunk in transformers_provider.chat_completion_stream(chat("Go on", max_tokens=0)):
            first_chunk.set()

    task = asyncio.create_task(consume())
    await first_chunk.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await _assert_generation_stopped(engine, before)


async def test_concurrent_requests_are_batched_and_match_serial_outputs(
    transformers_provider: TransformersInference,
) -> None:
    engine = transformers_provider.loaded_model(TINY).engine
    # Different prompt lengths and token budgets: rows join mid-decode and leave at different steps.
    requests = [
        chat("Hi", max_tokens=12),
        chat("Write a long poem about the sea and the sky and the stars", max_tokens=30),
        chat("What is 2+2?", max_tokens=20),
        chat("Tell me a story about a dragon", max_tokens=40),
    ]
    serial = [(await transformers_provider.chat_completion(r)).completion_message.content for r in requests]
    await _wait_until_idle(engine)
    steps_before = engine.stats().decode_steps

    async def staggered(index: int, request: ChatCompletionRequest) -> str:
        await asyncio.sleep(0.01 * index)
        return content_text((await transformers_provider.chat_completion(request)).completion_message.content)

    sampler = transformers_provider.chat_completion(
        chat("noise", max_tokens=25, strategy=SamplingStrategy.top_p, temperature=1.0)
    )
    results = await asyncio.gather(*(staggered(i, r) for i, r in enumerate(requests)), sampler)
    assert list(results[:4]) == serial
    stats = engine.stats()
    assert stats.largest_batch >= 3, "requests were not decoded together"
    assert stats.decode_steps - steps_before < sum([12, 30, 20, 40, 25]), "steps were not shared"


async def test_generation_does_not_block_the_event_loop(transformers_provider: TransformersInference) -> None:
    longest_gap = 0.0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal longest_gap
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            longest_gap = max(longest_gap, now - last)
            last = now

    tick = asyncio.create_task(ticker())
    await transformers_provider.chat_completion(chat("Keep talking", max_tokens=60))
    done.set()
    await tick
    assert longest_gap < 0.25, f"the event loop stalled for {longest_gap:.3f}s"


# --- request errors -----------------------------------------------------------------------------


async def test_a_prompt_longer_than_the_context_is_rejected_naming_both_lengths(
    transformers_provider: TransformersInference,
) -> None:
    request = chat("word " * 400)
    prompt_len = len(encode_dialog(request.messages, model_id=TINY))
    with pytest.raises(InvalidRequest) as error:
        transformers_provider.chat_completion_stream(request)
    assert str(prompt_len) in error.value.message and str(TINY_CONTEXT) in error.value.message


async def test_images_on_a_text_model_are_rejected(transformers_provider: TransformersInference) -> None:
    image = ImageContentItem(data="aGVsbG8=")
    request = ChatCompletionRequest(
        model_id=TINY, messages=[UserMessage(content=[TextContentItem(text="What is this?"), image])]
    )
    with pytest.raises(InvalidRequest, match=f"model {TINY} is text-only"):
        await transformers_provider.chat_completion(request)


async def test_embeddings_are_refused_by_the_llm_provider(transformers_provider: TransformersInference) -> None:
    with pytest.raises(InvalidRequest, match="LLMs only"):
        await transformers_provider.embeddings(EmbeddingsRequest(model_id=TINY, contents=["hi"]))


async def test_an_unregistered_model_is_not_found(transformers_provider: TransformersInference) -> None:
    with pytest.raises(ModelNotFound):
        await transformers_provider.chat_completion(chat("hi").model_copy(update={"model_id": "nope"}))


# --- finding weights ----------------------------------------------------------------------------


async def test_missing_weights_say_where_they_looked_and_how_to_get_them(tmp_path: Path) -> None:
    config = TransformersInferenceConfig(checkpoint_dir=str(tmp_path / "ckpts"), hf_cache_dir=str(tmp_path / "hf"))
    provider = TransformersInference(config)
    with pytest.raises(InvalidRequest) as error:
        await provider.register_model(model("Llama3.2-1B-Instruct"))
    message = error.value.message
    assert str(tmp_path / "ckpts" / "Llama3.2-1B-Instruct") in message
    assert "meta-llama/Llama-3.2-1B-Instruct" in message
    assert "huggingface-cli download" in message and "llama model download" in message

    with pytest.raises(InvalidRequest, match="/no/such/dir"):
        await provider.register_model(model("/no/such/dir"))


async def test_weights_resolve_from_checkpoint_dir_and_the_hf_cache(tmp_path: Path, tiny_model_dir: Path) -> None:
    (tmp_path / "ckpts").mkdir()
    (tmp_path / "ckpts" / "my-llama").symlink_to(tiny_model_dir)
    repo = tmp_path / "hf" / "models--acme--tiny-llama"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0123abcd")
    (repo / "snapshots").mkdir()
    snapshot = repo / "snapshots" / "0123abcd"
    snapshot.symlink_to(tiny_model_dir)
    config = TransformersInferenceConfig(
        device="cpu", checkpoint_dir=str(tmp_path / "ckpts"), hf_cache_dir=str(tmp_path / "hf")
    )
    provider = TransformersInference(config)
    try:
        for resource_id in ("my-llama", "acme/tiny-llama"):
            registered = await provider.register_model(model(resource_id))
            assert registered.metadata["context_length"] == 4096
            assert provider.loaded_model(resource_id).path in (tmp_path / "ckpts" / "my-llama", snapshot)
            request = chat("Hello there").model_copy(update={"model_id": resource_id})
            assert (await provider.chat_completion(request)).completion_message.content
    finally:
        await provider.shutdown()


def test_the_tiny_model_is_built_once_and_identically(tiny_model_root: Path, tmp_path: Path) -> None:
    cached = tiny_model_root / TINY / "model.safetensors"
    mtime = cached.stat().st_mtime_ns
    started = time.perf_counter()
    assert ensure_tiny_model(tiny_model_root) == tiny_model_root / TINY
    assert time.perf_counter() - started < 0.5
    assert cached.stat().st_mtime_ns == mtime

    rebuilt = ensure_tiny_model(tmp_path) / "model.safetensors"
    assert rebuilt.read_bytes() == cached.read_bytes(), "the seeded build is not reproducible"


def test_concurrent_builders_of_the_tiny_model_both_succeed(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        paths = list(pool.map(lambda _: ensure_tiny_model(tmp_path), range(2)))
    assert paths[0] == paths[1] == tmp_path / TINY
    assert sorted(p.name for p in tmp_path.iterdir()) == [TINY]  # no staging debris left
