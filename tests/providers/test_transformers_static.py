"""inline::transformers' static-cache decode path (StaticDecodeBatch): greedy tokens equal plain
transformers `generate` and the eager path, token for token, whatever joins, leaves or shares
the batch; a cancelled request frees its slot; text models take this path by default."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

import asyncio
from pathlib import Path
from typing import Any

import torch

from llama_stack.models.chat_format import StopTokens
from llama_stack.providers.inference.transformers import static_batch
from llama_stack.providers.inference.transformers.batch import DecodeBatch, RowBatch
from llama_stack.providers.inference.transformers.engine import (
    FinishEvent,
    GenerationEngine,
    GenerationRequest,
    TokenEvent,
)
from llama_stack.providers.inference.transformers.inference import TransformersInference
from llama_stack.providers.inference.transformers.sampling import SamplingConfig
from llama_stack.providers.inference.transformers.static_batch import StaticDecodeBatch
from tests.providers.transformers_support import TINY, chat, hf_greedy, load_hf_tiny

NEVER_STOP = StopTokens(end_of_turn=frozenset(), end_of_message=frozenset())
# (prompt length, new tokens): short and long prompts, short and long generations.
SHAPES = [(5, 24), (23, 10), (11, 40), (40, 16), (3, 6)]


@pytest.fixture(scope="module")
def hf_model(tiny_model_dir: Path) -> Any:
    return load_hf_tiny(tiny_model_dir)


@pytest.fixture(scope="module")
def cases(hf_model: Any) -> list[tuple[list[int], list[int]]]:
    """(prompt, greedy continuation by plain `generate`) for each shape."""
    generator = torch.Generator().manual_seed(7)
    prompts = [torch.randint(0, 2000, (length,), generator=generator).tolist() for length, _ in SHAPES]
    return [(prompt, hf_greedy(hf_model, prompt, new)) for prompt, (_, new) in zip(prompts, SHAPES, strict=True)]


def test_rows_joining_and_leaving_decode_as_generate(
    hf_model: Any, cases: list[tuple[list[int], list[int]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Driven by hand: a row joins every third step, each leaves at its own length; a small
    first cache forces the cache to grow and its shared padding to be dropped on the way."""
    monkeypatch.setattr(static_batch, "FIRST_CAPACITY", 16)
    batch = StaticDecodeBatch(hf_model, slots=3, max_len=128)
    outputs: list[list[int]] = [[] for _ in cases]
    active: list[int] = []
    waiting = list(range(len(cases)))
    step = 0
    with torch.inference_mode():
        while waiting or active:
            if waiting and step % 3 == 0 and batch.size < 3:
                case = waiting.pop(0)
                logits, cache = batch.prefill(cases[case][0])
                outputs[case].append(int(logits.argmax()))
                batch.join(cache, len(cases[case][0]))
                active.append(case)
            if active:
                logits = batch.decode([outputs[case][-1] for case in active])
                for row, case in enumerate(active):
                    outputs[case].append(int(logits[row].argmax()))
            keep = [row for row, case in enumerate(active) if len(outputs[case]) < len(cases[case][1])]
            batch.keep(keep)
            active = [active[row] for row in keep]
            step += 1
    assert outputs == [expected for _, expected in cases]
    assert batch.growths >= 1 and batch.compactions >= 1, "the test should exercise growth and compaction"


async def _generate(engine: GenerationEngine, prompt: list[int], new: int, delay: float = 0.0) -> list[int]:
    await asyncio.sleep(delay)
    request = GenerationRequest(
        prompt_tokens=prompt, max_new_tokens=new, sampling=SamplingConfig(), stop_tokens=NEVER_STOP
    )
    tokens: list[int] = []
    async for event in engine.submit(request).events():
        if isinstance(event, TokenEvent):
            tokens.append(event.token_id)
    return tokens


@pytest.mark.parametrize("path", ["static", "eager"])
async def test_concurrent_requests_through_the_engine_match_generate(
    hf_model: Any, cases: list[tuple[list[int], list[int]]], path: str
) -> None:
    """All at once and some joining mid-flight, more requests than slots: each gets exactly
    what `generate` gives it alone, on the static path as on the eager one."""
    batch: RowBatch = StaticDecodeBatch(hf_model, slots=4, max_len=128) if path == "static" else DecodeBatch(hf_model)
    engine = GenerationEngine(hf_model, name=f"test-{path}", max_batch_size=4, batch=batch)
    try:
        delays = [0.0, 0.0, 0.05, 0.1, 0.15]
        outputs = await asyncio.gather(
            *(
                _generate(engine, prompt, len(expected), delay)
                for (prompt, expected), delay in zip(cases, delays, strict=True)
            )
        )
        assert engine.stats().largest_batch >= 2
    finally:
        await asyncio.to_thread(engine.close)
    assert outputs == [expected for _, expected in cases]


async def test_a_cancelled_request_frees_its_slot(hf_model: Any, cases: list[tuple[list[int], list[int]]]) -> None:
    """Two slots, both busy: when one consumer goes away, a waiting request takes its slot and
    decodes exactly as it would alone."""
    batch = StaticDecodeBatch(hf_model, slots=2, max_len=128)
    engine = GenerationEngine(hf_model, name="test-cancel", max_batch_size=2, batch=batch)
    try:
        long_prompt = cases[0][0]
        keeper = asyncio.create_task(_generate(engine, long_prompt, 60))
        leaver_request = GenerationRequest(
            prompt_tokens=cases[1][0], max_new_tokens=60, sampling=SamplingConfig(), stop_tokens=NEVER_STOP
        )
        leaver = engine.submit(leaver_request).events()
        async for event in leaver:
            if isinstance(event, TokenEvent):
                break
        prompt, expected = cases[4]
        waiter = asyncio.create_task(_generate(engine, prompt, len(expected)))
        await asyncio.sleep(0.05)
        assert engine.stats().waiting == 1, "both slots are taken"
        await leaver.aclose()  # what a client disconnect does
        assert await asyncio.wait_for(waiter, 30) == expected
        assert len(await asyncio.wait_for(keeper, 30)) == 60
        for _ in range(500):  # the worker drops a finished row just after its last event goes out
            if batch.size == 0:
                break
            await asyncio.sleep(0.01)
        assert batch.size == 0 and engine.stats().active == 0
    finally:
        await asyncio.to_thread(engine.close)


async def test_a_stream_that_ends_early_finishes_without_other_rows(
    hf_model: Any, cases: list[tuple[list[int], list[int]]]
) -> None:
    """A stop token ends one row; the other rows keep their slot and their exact tokens."""
    prompt, expected = cases[2]
    stop_at = expected[5]
    stops = StopTokens(end_of_turn=frozenset({stop_at}), end_of_message=frozenset())
    engine = GenerationEngine(
        hf_model, name="test-stop", max_batch_size=2, batch=StaticDecodeBatch(hf_model, slots=2, max_len=128)
    )
    try:
        request = GenerationRequest(
            prompt_tokens=prompt, max_new_tokens=len(expected), sampling=SamplingConfig(), stop_tokens=stops
        )
        other = asyncio.create_task(_generate(engine, cases[0][0], len(cases[0][1])))
        events = [event async for event in engine.submit(request).events()]
        assert await other == cases[0][1]
    finally:
        await asyncio.to_thread(engine.close)
    tokens = [event.token_id for event in events if isinstance(event, TokenEvent)]
    assert tokens == expected[: expected.index(stop_at)]
    assert isinstance(events[-1], FinishEvent)


def test_a_prompt_too_long_for_the_cache_is_refused(hf_model: Any) -> None:
    batch = StaticDecodeBatch(hf_model, slots=1, max_len=8)
    with torch.inference_mode():
        _, cache = batch.prefill(list(range(8)))
    with pytest.raises(ValueError, match="no room"):
        batch.join(cache, 8)


async def test_text_models_take_the_static_path_uncompiled_on_cpu(
    transformers_provider: TransformersInference,
) -> None:
    """The session provider (device cpu, default config) decodes on the static path, so every
    other inline::transformers test (stops, tools, structured output, logprobs) runs through it."""
    batch = transformers_provider.loaded_model(TINY).engine.batch
    assert isinstance(batch, StaticDecodeBatch)
    assert not batch.compile_step
    response = await transformers_provider.chat_completion(chat("Hello", max_tokens=6))
    assert response.completion_message.stop_reason is not None
