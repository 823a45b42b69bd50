"""inline::transformers: cancellation, continuous batching and a free event loop."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

import asyncio
import time
from typing import Any

from llama_stack.apis.common import (
    SamplingStrategy,
    content_text,
)
from llama_stack.apis.inference import (
    ChatCompletionEventType,
    ChatCompletionRequest,
)
from llama_stack.providers.inference.transformers.inference import TransformersInference
from tests.providers.transformers_support import TINY, TINY_CONTEXT, chat

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
