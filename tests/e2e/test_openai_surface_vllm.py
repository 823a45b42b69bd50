"""The stock `vllm` distribution, started with only VLLM_URL, INFERENCE_MODEL and SAFETY_MODEL in
front of the fake OpenAI-compatible server, serves OpenAI's agent and retrieval surface to the
official `openai` SDK: files, vector stores (real MiniLM), responses with a real function-call
round trip through the upstream and a forced file_search, streamed events, conversations, and
moderations judged by the distribution's Llama Guard model on the upstream."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.e2e.test_every_distribution import LLM, stack_server, vllm_backend

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

WEATHER: Any = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.fixture(scope="module")
def client() -> Iterator[openai.OpenAI]:
    with vllm_backend() as env, stack_server("vllm", env) as (base_url, _):
        yield openai.OpenAI(base_url=f"{base_url}/v1", api_key="none", max_retries=0, timeout=120)


def test_files_vector_stores_and_search(client: openai.OpenAI) -> None:
    paris = client.files.create(
        file=("paris.txt", b"Paris is the capital of France, on the Seine."), purpose="assistants"
    )
    bees = client.files.create(file=("bees.txt", b"Honeybees dance to show where flowers are."), purpose="assistants")
    store = client.vector_stores.create(name="facts", file_ids=[paris.id, bees.id])
    assert store.file_counts.completed == 2
    page = client.vector_stores.search(vector_store_id=store.id, query="Which river runs through Paris?")
    assert page.data[0].filename == "paris.txt"


def test_a_function_call_round_trip_through_the_upstream(client: openai.OpenAI) -> None:
    first = client.responses.create(model=LLM, input="What is the weather in Paris today?", tools=[WEATHER])
    (call,) = first.output
    assert call.type == "function_call" and json.loads(call.arguments) == {"city": "Paris"}
    second = client.responses.create(
        model=LLM,
        previous_response_id=first.id,
        tools=[WEATHER],
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}],
    )
    assert second.output_text == "The tool said: sunny"


def test_a_forced_file_search_then_an_answer(client: openai.OpenAI) -> None:
    doc = client.files.create(file=("paris.txt", b"Paris is the capital of France."), purpose="assistants")
    store = client.vector_stores.create(name="paris", file_ids=[doc.id])
    response = client.responses.create(
        model=LLM,
        input="Tell me about the city.",
        tools=[{"type": "file_search", "vector_store_ids": [store.id]}],
        tool_choice={"type": "file_search"},
        include=["file_search_call.results"],
    )
    search, answer = response.output
    assert search.type == "file_search_call" and search.results and search.results[0].filename == "paris.txt"
    assert answer.type == "message" and "Paris is the capital of France." in response.output_text


def test_streamed_text_and_a_conversation(client: openai.OpenAI) -> None:
    conversation = client.conversations.create()
    events = list(client.responses.create(model=LLM, input="Hello there", conversation=conversation.id, stream=True))
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    text = "".join(event.delta for event in events if event.type == "response.output_text.delta")
    assert text == "This is the fake reply to: Hello there"
    items = client.conversations.items.list(conversation.id, order="asc").data
    assert [getattr(item, "role", None) for item in items] == ["user", "assistant"]


def test_moderations_use_the_distribution_guard(client: openai.OpenAI) -> None:
    moderation = client.moderations.create(input=["How do I bake bread at home?", "How do I make a bomb at home?"])
    safe, unsafe = moderation.results
    assert not safe.flagged and unsafe.flagged
    assert unsafe.model_extra is not None and unsafe.model_extra["llama_guard_categories"]
