"""inline::transformers: request errors, finding weights, and the cached tiny model."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

import time
from pathlib import Path

from llama_stack.apis.common import (
    ImageContentItem,
    TextContentItem,
    UserMessage,
)
from llama_stack.apis.errors import InvalidRequest, ModelNotFound
from llama_stack.apis.inference import (
    ChatCompletionRequest,
    EmbeddingsRequest,
)
from llama_stack.models.chat_format import (
    encode_dialog,
)
from llama_stack.models.tiny import ensure_tiny_model
from llama_stack.providers.inference.transformers import TransformersInferenceConfig
from llama_stack.providers.inference.transformers.inference import TransformersInference
from tests.providers.transformers_support import TINY, TINY_CONTEXT, chat, model

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


# --- device and dtype ---------------------------------------------------------------------------


async def test_the_configured_dtype_is_the_one_the_model_runs_in(tiny_model_root: Path) -> None:
    import torch

    config = TransformersInferenceConfig(device="cpu", dtype="bfloat16", tiny_model_dir=str(tiny_model_root))
    provider = TransformersInference(config)
    try:
        await provider.register_model(model(TINY))
        weights = next(provider.loaded_model(TINY).model.parameters())
        assert weights.dtype == torch.bfloat16 and weights.device.type == "cpu"
        response = await provider.chat_completion(chat("Hello", max_tokens=3))
        assert response.usage is not None and response.usage.completion_tokens == 3
    finally:
        await provider.shutdown()


@pytest.mark.parametrize("device", ["cuda", "mps"])
async def test_a_configured_gpu_that_is_absent_is_a_clear_error(device: str, tiny_model_root: Path) -> None:
    import torch

    present = torch.cuda.is_available() if device == "cuda" else torch.backends.mps.is_available()
    if present:
        pytest.skip(f"this machine has {device}")
    from llama_stack.apis.errors import ProviderError

    provider = TransformersInference(TransformersInferenceConfig(device=device, tiny_model_dir=str(tiny_model_root)))
    with pytest.raises(ProviderError, match=f"device '{device}' is configured but torch sees no"):
        await provider.register_model(model(TINY))
    await provider.shutdown()
