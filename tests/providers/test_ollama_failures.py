"""remote::ollama against the fake Ollama server: model tags and pulls, every way Ollama can fail
(refused connection, error bodies, mid-stream errors, timeouts), cancellation reaching Ollama,
and the ollama distribution's run.yaml resolved into a stack."""

from __future__ import annotations

import asyncio
import logging
import re
import socket
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any, cast

import pytest
import yaml

from llama_stack.apis.errors import (
    InvalidRequest,
    ModelNotFound,
    NotFound,
    RateLimited,
    UpstreamError,
    UpstreamTimeout,
)
from llama_stack.apis.inference import (
    ChatCompletionEventType,
    ChatCompletionResponseStreamChunk,
    CompletionRequest,
    EmbeddingsRequest,
)
from llama_stack.apis.models import ModelType
from llama_stack.distribution.provider import Api, Deps
from tests.fakes.ollama_model import llama_text
from tests.fakes.ollama_server import FakeOllama, serve

pytest.importorskip("ollama", reason="needs the ollama extra: pip install 'llamastack-lite[ollama]'")

from llama_stack.providers.inference.ollama import (
    OllamaInferenceConfig,
    get_provider_impl,
    provider_spec,
)
from llama_stack.providers.inference.ollama.inference import OllamaInference
from tests.providers.ollama_support import (  # noqa: F401 - pytest finds fixtures by name
    DISTRIBUTION,
    LLAMA_1B,
    MINILM,
    chat,
    collect,
    eventually,
    fake_fixture,
    ollama_url_fixture,
    provider_fixture,
    register,
    text_of,
)

# --- models: tags, pulls ------------------------------------------------------------------------


async def test_registration_reports_the_tag_and_the_model_facts(ollama_url: str) -> None:
    impl = await get_provider_impl(OllamaInferenceConfig(url=ollama_url), Deps())
    try:
        llm = await register(impl, "Llama3.2-1B-Instruct")
        embedding = await register(impl, MINILM, ModelType.embedding)
    finally:
        await impl.shutdown()
    assert llm.metadata == {"ollama_tag": "llama3.2:1b-instruct-fp16", "context_length": 131072}
    assert embedding.metadata["embedding_dimension"] == 384


async def test_an_embedding_model_registered_as_an_llm_is_refused(provider: OllamaInference) -> None:
    with pytest.raises(InvalidRequest, match="model_type 'embedding'"):
        await register(provider, "nomic-embed-text")


async def test_another_installed_tag_of_the_model_is_used() -> None:
    fake = FakeOllama(installed=[llama_text("llama3.2:1b")])
    with serve(fake) as url:
        impl = await get_provider_impl(OllamaInferenceConfig(url=url), Deps())
        try:
            model = await register(impl, LLAMA_1B)
            await impl.chat_completion(chat("Hi"))
        finally:
            await impl.shutdown()
    assert model.metadata["ollama_tag"] == "llama3.2:1b" and fake.last("/api/generate")["model"] == "llama3.2:1b"


async def test_a_missing_model_names_the_ollama_pull_command(provider: OllamaInference, fake: FakeOllama) -> None:
    with pytest.raises(InvalidRequest) as caught:
        await register(provider, "meta-llama/Llama-3.2-3B-Instruct")
    assert "`ollama pull llama3.2:3b-instruct-fp16`" in caught.value.message
    assert provider.ollama.url in caught.value.message and "pull_missing_models" in caught.value.message
    assert all(r.path != "/api/pull" for r in fake.received)


async def test_pull_missing_models_pulls_with_progress(
    ollama_url: str, fake: FakeOllama, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    impl = await get_provider_impl(OllamaInferenceConfig(url=ollama_url, pull_missing_models=True), Deps())
    try:
        with caplog.at_level(logging.INFO, logger="llama_stack.providers.inference.ollama"):
            model = await register(impl, "Llama3.2-3B-Instruct")
        response = await impl.chat_completion(chat("Hi", model="Llama3.2-3B-Instruct"))
    finally:
        await impl.shutdown()
    pulled = fake.last("/api/pull")
    assert pulled["model"] == "llama3.2:3b-instruct-fp16" and pulled["stream"] is True
    assert model.metadata["ollama_tag"] == "llama3.2:3b-instruct-fp16"
    assert response.completion_message.content
    logged = [r.getMessage() for r in caplog.records]
    assert "pull llama3.2:3b-instruct-fp16: pulling 777777777777 50% of 2479595870 bytes" in logged
    assert logged.count("pull llama3.2:3b-instruct-fp16: success") == 1
    assert "2.5/2.5 GB" in capsys.readouterr().err  # the progress bar, drawn on the server console


async def test_a_failed_pull_is_an_upstream_error(ollama_url: str) -> None:
    impl = await get_provider_impl(OllamaInferenceConfig(url=ollama_url, pull_missing_models=True), Deps())
    try:
        with pytest.raises(UpstreamError, match="file does not exist"):
            await register(impl, "no-such-model:1b")
    finally:
        await impl.shutdown()


async def test_an_unregistered_model_is_not_found(provider: OllamaInference) -> None:
    await provider.unregister_model(LLAMA_1B)
    with pytest.raises(ModelNotFound):
        await provider.chat_completion(chat("Hi"))


# --- failures -----------------------------------------------------------------------------------


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_connection_refused_names_the_url_and_ollama_serve(fake: FakeOllama) -> None:
    url = f"http://127.0.0.1:{_unused_port()}"
    impl = await get_provider_impl(OllamaInferenceConfig(url=url), Deps())
    with pytest.raises(UpstreamError, match="is `ollama serve` running") as caught:
        await register(impl, LLAMA_1B)
    assert url in caught.value.message

    with serve(fake) as live_url:  # registered while Ollama was up, then Ollama goes away
        impl = await get_provider_impl(OllamaInferenceConfig(url=live_url), Deps())
        await register(impl, LLAMA_1B)
    with pytest.raises(UpstreamError, match="is `ollama serve` running"):
        await impl.chat_completion(chat("Hi"))
    with pytest.raises(UpstreamError, match="is `ollama serve` running"):
        await collect(impl.chat_completion_stream(chat("Hi")))
    await impl.shutdown()


@pytest.mark.parametrize(
    ("status", "message", "error"),
    [
        (500, "llama runner process has terminated: signal: killed", UpstreamError),
        (400, "invalid options: num_ctx", InvalidRequest),
        (503, "server busy, please try again.  maximum pending requests exceeded", RateLimited),
    ],
)
async def test_ollama_error_bodies_become_typed_errors(
    provider: OllamaInference, fake: FakeOllama, status: int, message: str, error: type[Exception]
) -> None:
    fake.inject_error(status, message)
    with pytest.raises(error, match=message[:20]):
        await provider.chat_completion(chat("Hi"))
    fake.inject_error(status, message)
    with pytest.raises(error, match=message[:20]):
        await collect(provider.chat_completion_stream(chat("Hi")))
    fake.inject_error(status, message)
    with pytest.raises(error, match=message[:20]):
        await provider.embeddings(EmbeddingsRequest(model_id=MINILM, contents=["x"]))


async def test_an_error_in_the_middle_of_a_stream_is_an_upstream_error(
    provider: OllamaInference, fake: FakeOllama
) -> None:
    fake.fail_mid_stream = "llama runner process has terminated: exit status 2"
    chunks: list[ChatCompletionResponseStreamChunk] = []
    with pytest.raises(UpstreamError, match=r"mid-stream.*llama runner process has terminated"):
        async for chunk in provider.chat_completion_stream(chat("Hello there")):
            chunks.append(chunk)
    assert text_of(chunks) == "You"  # what came before the error line was delivered
    assert fake.open_streams == 0


async def test_a_model_removed_from_ollama_names_the_pull_command(provider: OllamaInference, fake: FakeOllama) -> None:
    del fake.models["llama3.2:1b-instruct-fp16"]
    with pytest.raises(NotFound, match=re.escape("`ollama pull llama3.2:1b-instruct-fp16`")):
        await provider.chat_completion(chat("Hi"))
    with pytest.raises(NotFound, match="try pulling it first"):
        await collect(provider.chat_completion_stream(chat("Hi")))


async def test_a_stalled_ollama_is_an_upstream_timeout(ollama_url: str, fake: FakeOllama) -> None:
    impl = await get_provider_impl(OllamaInferenceConfig(url=ollama_url, timeout_s=0.3), Deps())
    await register(impl, LLAMA_1B)
    fake.stall_s = 1.0
    try:
        with pytest.raises(UpstreamTimeout, match=re.escape("0.3s")):
            await impl.chat_completion(chat("Hi"))
        with pytest.raises(UpstreamTimeout):
            await collect(impl.chat_completion_stream(chat("Hi")))
    finally:
        await impl.shutdown()


# --- cancellation -------------------------------------------------------------------------------


async def test_closing_a_stream_closes_the_upstream_stream(provider: OllamaInference, fake: FakeOllama) -> None:
    fake.token_delay_s = 0.02
    stream = cast(
        AsyncGenerator[ChatCompletionResponseStreamChunk, None], provider.chat_completion_stream(chat("Count to 500"))
    )
    for _ in range(4):
        await anext(stream)
    assert fake.open_streams == 1
    await stream.aclose()
    await eventually(lambda: fake.open_streams == 0, within_s=1.0)

    completion = cast(Any, provider.completion_stream(CompletionRequest(model_id=LLAMA_1B, content="Count to 500")))
    await anext(completion)
    await completion.aclose()
    await eventually(lambda: fake.open_streams == 0, within_s=1.0)


async def test_cancelling_the_consumer_closes_the_upstream_stream(provider: OllamaInference, fake: FakeOllama) -> None:
    fake.token_delay_s = 0.02
    started = asyncio.Event()

    async def consume() -> None:
        async for chunk in provider.chat_completion_stream(chat("Count to 500")):
            if chunk.event.event_type == ChatCompletionEventType.progress:
                started.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(started.wait(), 5)
    assert fake.open_streams == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await eventually(lambda: fake.open_streams == 0, within_s=1.0)


# --- the distribution ---------------------------------------------------------------------------


async def test_the_ollama_distribution_serves_chat_through_the_router(
    ollama_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """run.yaml's remote::ollama entry, env-expanded and resolved like `llama stack run ollama`
    (the sentence-transformers entry is left out: it loads torch)."""
    from llama_stack.distribution.registry import install_provider
    from llama_stack.distribution.resolver import build_stack
    from llama_stack.distribution.spec import parse_run_config

    install_provider(provider_spec)  # the lead adds the entry point; this test needs no install
    data = yaml.safe_load((DISTRIBUTION / "run.yaml").read_text())
    data["providers"]["inference"] = [p for p in data["providers"]["inference"] if p["provider_id"] == "ollama"]
    data["models"] = [m for m in data["models"] if m["provider_id"] == "ollama"]
    env = {"OLLAMA_URL": ollama_url, "INFERENCE_MODEL": LLAMA_1B, "SQLITE_STORE_DIR": str(tmp_path)}
    env["SAFETY_MODEL"] = ""  # this fake Ollama holds no Llama Guard: the shield is off
    stack = await build_stack(parse_run_config(data, env=env))
    try:
        inference: Any = stack.routers[Api.inference]
        response = await inference.chat_completion(chat("Hello there"))
    finally:
        await stack.shutdown()
    assert response.completion_message.content.startswith("You said: Hello there")
