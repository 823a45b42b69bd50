"""Upstream faults of the OpenAI-compatible adapter, over its own HTTP client against the fake
server: each becomes the right typed error naming the provider, retries happen only where safe
(counted by the fake), API keys are taken in order, and a cancelled stream closes the upstream."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from llama_stack.apis.common import SamplingParams, SamplingStrategy, UserMessage
from llama_stack.apis.errors import InvalidRequest, RateLimited, UpstreamError, UpstreamTimeout
from llama_stack.apis.inference import ChatCompletionRequest, ChatCompletionResponseStreamChunk
from llama_stack.distribution.provider import Api, Deps
from llama_stack.distribution.request_context import reset_provider_data, set_provider_data
from llama_stack.distribution.spec import load_run_config, validate_section
from llama_stack.providers.inference.openai_compat import SPECS, OpenAICompatConfig
from tests.fakes.openai_server import FakeOpenAIServer

MODEL = "meta-llama/Llama-3.2-3B-Instruct"
DISTRIBUTIONS = Path(__file__).resolve().parents[2] / "distributions"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server


@pytest.fixture(autouse=True)
def clean(fake: FakeOpenAIServer) -> None:
    fake.state.reset()
    fake.state.api_key = None


async def make(url: str, provider_type: str = "remote::vllm", **config: Any) -> Any:
    settings = OpenAICompatConfig(url=url, **{"retry_backoff_s": 0.01, "timeout_s": 5, **config})
    return await SPECS[provider_type].factory(settings, Deps())


@pytest.fixture
async def vllm(fake: FakeOpenAIServer) -> AsyncIterator[Any]:
    provider = await make(fake.base_url)
    yield provider
    await provider.shutdown()


def ask(text: str, **fields: Any) -> ChatCompletionRequest:
    return ChatCompletionRequest(model_id=MODEL, messages=[UserMessage(content=text)], **fields)


async def drain(stream: AsyncIterator[ChatCompletionResponseStreamChunk]) -> list[Any]:
    return [chunk async for chunk in stream]


# --- each fault, its error ----------------------------------------------------------------------


async def test_connection_refused_names_the_provider_and_url() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}/v1"
    provider = await make(url, max_retries=1)
    for call in (provider.chat_completion(ask("hi")), drain(provider.chat_completion_stream(ask("hi")))):
        with pytest.raises(UpstreamError) as caught:
            await call
        assert "remote::vllm" in caught.value.message and url in caught.value.message


async def test_a_hanging_upstream_times_out_without_retrying(fake: FakeOpenAIServer) -> None:
    provider = await make(fake.base_url, timeout_s=0.3)
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout, match="remote::vllm"):
        await provider.chat_completion(ask("[[fake:hang]]"))
    assert time.monotonic() - started < 2 and fake.state.requests["chat"] == 1


async def test_5xx_is_retried_for_calls_but_not_for_streams(fake: FakeOpenAIServer, vllm: Any) -> None:
    with pytest.raises(UpstreamError, match="HTTP 500"):
        await vllm.chat_completion(ask("[[fake:500]]"))
    assert fake.state.requests["chat"] == 3  # the first call and max_retries=2 retries

    fake.state.reset()
    fake.state.fail_next("500")
    response = await vllm.chat_completion(ask("hi"))  # the retry cures it
    assert response.completion_message.content and fake.state.requests["chat"] == 2

    fake.state.reset()
    fake.state.fail_next("500")
    with pytest.raises(UpstreamError, match="HTTP 500"):
        await drain(vllm.chat_completion_stream(ask("hi", stream=True)))
    assert fake.state.requests["chat"] == 1


async def test_429_waits_out_retry_after_then_reports_rate_limited(fake: FakeOpenAIServer, vllm: Any) -> None:
    fake.state.fail_next("429", retry_after=0.3)
    started = time.monotonic()
    await vllm.chat_completion(ask("hi"))
    assert time.monotonic() - started >= 0.3 and fake.state.requests["chat"] == 2

    fake.state.reset()
    fake.state.fail_next("429", times=3, retry_after=0.05)
    with pytest.raises(RateLimited) as caught:
        await vllm.chat_completion(ask("hi"))
    assert caught.value.retry_after_s == pytest.approx(0.05)
    assert fake.state.requests["chat"] == 3

    fake.state.reset()
    fake.state.fail_next("429", retry_after=3600)  # too long to wait: the client hears at once
    with pytest.raises(RateLimited) as caught:
        await vllm.chat_completion(ask("hi"))
    assert caught.value.retry_after_s == 3600 and fake.state.requests["chat"] == 1


async def test_upstream_400_and_404_are_invalid_requests_with_its_message(fake: FakeOpenAIServer) -> None:
    provider = await make(fake.base_url, max_retries=2)
    too_hot = SamplingParams(strategy=SamplingStrategy.top_p, temperature=5.0)
    with pytest.raises(InvalidRequest, match="temperature must be between 0 and 2"):
        await provider.chat_completion(ask("hi", sampling_params=too_hot))
    unknown = ChatCompletionRequest(model_id="gone/model", messages=[UserMessage(content="hi")])
    with pytest.raises(InvalidRequest, match="does not exist"):
        await drain(provider.chat_completion_stream(unknown))
    assert fake.state.requests["chat"] == 2  # a 4xx is never retried


async def test_garbage_and_a_dying_stream_are_upstream_errors(fake: FakeOpenAIServer, vllm: Any) -> None:
    with pytest.raises(UpstreamError, match="not the expected JSON"):
        await vllm.chat_completion(ask("[[fake:garbage]]"))
    with pytest.raises(UpstreamError, match="not the expected JSON"):
        await drain(vllm.chat_completion_stream(ask("[[fake:garbage]]", stream=True)))

    fake.state.reset()
    received: list[Any] = []
    with pytest.raises(UpstreamError, match="remote::vllm"):
        async for chunk in vllm.chat_completion_stream(ask("[[fake:die]] a long enough question", stream=True)):
            received.append(chunk)
    assert received and fake.state.requests["chat"] == 1  # a stream that has yielded is never retried

    fake.state.reset()
    with pytest.raises(UpstreamError, match="cannot reach"):
        await vllm.chat_completion(ask("[[fake:die]]"))
    assert fake.state.requests["chat"] == 3  # a dropped connection is retried for a plain call


# --- API keys -------------------------------------------------------------------------------------


async def test_api_key_precedence_provider_data_then_config_then_env(
    fake: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TOGETHER_API_KEY", raising=False)
    bare = await make(fake.base_url, "remote::together", model_ids={MODEL: MODEL})
    with pytest.raises(InvalidRequest) as caught:
        await bare.chat_completion(ask("hi"))
    for way in ('"together_api_key"', "X-LlamaStack-ProviderData", "api_key", "TOGETHER_API_KEY"):
        assert way in caught.value.message
    assert fake.state.requests["chat"] == 0

    monkeypatch.setenv("TOGETHER_API_KEY", "from-env")
    await bare.chat_completion(ask("hi"))
    configured = await make(fake.base_url, "remote::together", api_key="from-config", model_ids={MODEL: MODEL})
    await configured.chat_completion(ask("hi"))
    token = set_provider_data({"together_api_key": "from-header"})
    try:
        await configured.chat_completion(ask("hi"))
    finally:
        reset_provider_data(token)
    assert list(fake.state.authorizations) == ["Bearer from-env", "Bearer from-config", "Bearer from-header"]


async def test_a_refused_key_blames_whoever_gave_it(fake: FakeOpenAIServer) -> None:
    fake.state.api_key = "right"
    provider = await make(fake.base_url, "remote::openai", api_key="wrong", verify_models=False)
    with pytest.raises(UpstreamError, match="provider config"):  # the server's to fix: 502
        await provider.chat_completion(ask("hi"))
    token = set_provider_data({"openai_api_key": "also-wrong"})
    try:
        with pytest.raises(InvalidRequest, match="provider data"):  # the client's to fix: 400
            await provider.chat_completion(ask("hi"))
    finally:
        reset_provider_data(token)
    assert "also-wrong" not in str(fake.state.requests)


# --- cancellation -------------------------------------------------------------------------------


async def test_closing_a_stream_early_closes_the_upstream_response(fake: FakeOpenAIServer, vllm: Any) -> None:
    stream = vllm.chat_completion_stream(ask("[[fake:slow]] go on", stream=True))
    for _ in range(4):
        await anext(stream)
    assert fake.state.open_streams == 1
    await stream.aclose()
    deadline = time.monotonic() + 1.0
    while fake.state.open_streams and time.monotonic() < deadline:  # noqa: ASYNC110 (another thread's counter)
        await asyncio.sleep(0.01)
    assert fake.state.open_streams == 0


# --- factory and distributions ----------------------------------------------------------------


async def test_databricks_needs_a_url() -> None:
    with pytest.raises(ValueError, match="DATABRICKS_URL"):
        await SPECS["remote::databricks"].factory(OpenAICompatConfig(), Deps())


@pytest.mark.parametrize("name", ["vllm", "tgi", "together", "fireworks", "databricks"])
def test_shipped_distribution_configs_are_valid(name: str) -> None:
    config = load_run_config(DISTRIBUTIONS / name / "run.yaml", env={})
    remote = [e for e in config.providers[Api.inference] if e.provider_type.startswith("remote::")]
    # vLLM and TGI serve one model per server: the guard model has an endpoint of its own.
    guard_endpoint = [f"remote::{name}"] if name in ("vllm", "tgi") else []
    assert [e.provider_type for e in remote] == [f"remote::{name}", *guard_endpoint]
    for index, entry in enumerate(remote):
        validate_section(OpenAICompatConfig, entry.config, ("providers", "inference", index, "config"))
    assert config.models and all(m.provider_id for m in config.models)
