"""Providers started in the background: the server answers at once, /alpha/health says how each
provider stands, a request for a provider still loading waits and then answers, and a provider
that fails to start is reported and refuses requests with the reason instead of hanging.

The slow provider is scripted inference whose factory waits until the test lets it go, standing
for a provider that loads weights."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from llama_stack.distribution.provider import Api, Deps, ProviderSpec, lazy_imports
from llama_stack.distribution.registry import install_provider
from llama_stack.distribution.resolver import Stack, build_stack
from llama_stack.distribution.spec import ConfigError, parse_run_config
from llama_stack.server.app import create_app
from tests.scripted import ScriptedConfig, ScriptedInference

# What each held provider's factory waits for, by its `hold` name; set by the test to let it start.
RELEASES: dict[str, asyncio.Event] = {}


class HeldConfig(ScriptedConfig):
    hold: str = ""
    fail_with: str = ""  # when set, the factory raises this once released


async def _held_factory(config: HeldConfig, deps: Deps) -> ScriptedInference:
    await RELEASES.setdefault(config.hold, asyncio.Event()).wait()
    if config.fail_with:
        raise RuntimeError(config.fail_with)
    return ScriptedInference(ScriptedConfig(reply_prefix=config.reply_prefix, refuse_models=config.refuse_models))


install_provider(
    ProviderSpec(
        api=Api.inference,
        provider_type="test::held",
        config_class=HeldConfig,
        factory=_held_factory,
        description="scripted inference that starts when the test releases it",
    )
)


def run_config(tmp_path: Path, held: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": 2,
        "image_name": "startup",
        "providers": {
            "inference": [
                {"provider_id": "quick", "provider_type": "test::scripted", "config": {"reply_prefix": "Q "}},
                {"provider_id": "slow", "provider_type": "test::held", "config": {"reply_prefix": "S ", **held}},
            ]
        },
        "metadata_store": {"type": "sqlite", "db_path": str(tmp_path / "registry.db")},
        "models": [
            {"model_id": "fast-model", "provider_id": "quick"},
            {"model_id": "big-model", "provider_id": "slow"},
        ],
    }


@dataclass
class Served:
    stack: Stack
    http: httpx.AsyncClient
    release: asyncio.Event


@pytest.fixture
async def served(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Served]:
    held: dict[str, Any] = {"hold": request.node.name, **getattr(request, "param", {})}
    release = RELEASES[request.node.name] = asyncio.Event()
    stack = await build_stack(parse_run_config(run_config(tmp_path, held), env={}), background=True)
    transport = httpx.ASGITransport(app=create_app(stack))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://stack") as http:
            yield Served(stack, http, release)
    finally:
        release.set()
        await stack.shutdown()


def chat(model_id: str, text: str = "hello", **extra: Any) -> dict[str, Any]:
    return {"model_id": model_id, "messages": [{"role": "user", "content": text}], **extra}


def statuses(health: dict[str, Any]) -> dict[str, str]:
    return {p["provider_id"]: p["status"] for p in health["providers"]}


async def test_health_reports_each_provider_while_one_loads(served: Served) -> None:
    quick = next(p.startup.task for p in served.stack.providers if p.provider_id == "quick")
    assert quick is not None
    await quick
    loading = (await served.http.get("/alpha/health")).json()
    assert loading["status"] == "OK" and loading["ready"] is False
    assert statuses(loading) == {"quick": "ready", "slow": "starting"}

    served.release.set()
    await served.stack.wait_started()
    assert (await served.http.get("/alpha/health")).json() == {"status": "OK"}
    detail = (await served.http.get("/alpha/health", params={"detail": "true"})).json()
    assert detail["ready"] is True and statuses(detail) == {"quick": "ready", "slow": "ready"}


async def test_a_request_sent_while_its_provider_loads_waits_then_answers(served: Served) -> None:
    # The model is listed at once, and the other provider's models answer meanwhile.
    listed = (await served.http.get("/alpha/models/list")).json()
    assert {m["identifier"] for m in listed} == {"fast-model", "big-model"}
    quick = await served.http.post("/alpha/inference/chat-completion", json=chat("fast-model"))
    assert quick.json()["completion_message"]["content"] == "Q hello"

    plain = asyncio.create_task(served.http.post("/alpha/inference/chat-completion", json=chat("big-model")))
    stream = asyncio.create_task(
        served.http.post("/alpha/inference/chat-completion", json=chat("big-model", "a b", stream=True))
    )
    await asyncio.sleep(0.1)
    assert not plain.done() and not stream.done()

    served.release.set()
    answered = await asyncio.wait_for(plain, timeout=10)
    assert answered.status_code == 200
    assert answered.json()["completion_message"]["content"] == "S hello"
    streamed = await asyncio.wait_for(stream, timeout=10)
    assert streamed.status_code == 200 and "data: " in streamed.text
    # The model registered from the run config reached the provider once it started, and requests
    # now reach the provider itself: no gate is left on their path.
    slow: Any = served.stack.models.providers["slow"]
    assert isinstance(slow, ScriptedInference) and slow.registered == ["big-model"]
    router: Any = served.stack.routers[Api.inference]
    assert router.providers["slow"] is slow


async def test_a_registration_while_its_provider_loads_waits_for_it(served: Served) -> None:
    registering = asyncio.create_task(
        served.http.post("/alpha/models/register", json={"model_id": "late", "provider_id": "slow"})
    )
    await asyncio.sleep(0.1)
    assert not registering.done()
    served.release.set()
    assert (await asyncio.wait_for(registering, timeout=10)).status_code == 200
    slow: Any = served.stack.models.providers["slow"]
    assert sorted(slow.registered) == ["big-model", "late"]


@pytest.mark.parametrize("served", [{"fail_with": "weights are corrupt"}], indirect=True)
async def test_a_provider_that_fails_to_start_is_reported_and_refuses_requests(served: Served) -> None:
    waiting = asyncio.create_task(served.http.post("/alpha/inference/chat-completion", json=chat("big-model")))
    served.release.set()
    await served.stack.wait_started()

    answer = await served.http.get("/alpha/health")
    health = answer.json()
    # A health check (compose, Kubernetes) sees the server as broken, and the body says why.
    assert answer.status_code == 503 and health["status"] == "Error" and health["ready"] is False
    slow = next(p for p in health["providers"] if p["provider_id"] == "slow")
    assert slow["status"] == "failed" and "weights are corrupt" in slow["error"]

    for response in (
        await asyncio.wait_for(waiting, timeout=10),
        await served.http.post("/alpha/inference/chat-completion", json=chat("big-model", stream=True)),
    ):
        assert response.status_code == 500
        assert "provider 'slow'" in response.text and "weights are corrupt" in response.text
    quick = await served.http.post("/alpha/inference/chat-completion", json=chat("fast-model"))
    assert quick.status_code == 200


@pytest.mark.parametrize("served", [{"refuse_models": ["big-model"]}], indirect=True)
async def test_a_model_the_provider_refuses_at_start_fails_that_provider(served: Served) -> None:
    served.release.set()
    await served.stack.wait_started()
    health = (await served.http.get("/alpha/health")).json()
    slow = next(p for p in health["providers"] if p["provider_id"] == "slow")
    assert slow["status"] == "failed" and "model 'big-model': no weights for big-model" in slow["error"]


async def test_an_eager_start_still_fails_before_serving(tmp_path: Path) -> None:
    RELEASES["eager"] = released = asyncio.Event()
    released.set()
    config = run_config(tmp_path, {"hold": "eager", "fail_with": "weights are corrupt"})
    with pytest.raises(ConfigError, match=r"providers\.inference\[1\] \(test::held\): failed to start: weights"):
        await build_stack(parse_run_config(config, env={}))


def test_a_background_start_imports_what_the_factory_imports_lazily() -> None:
    import llama_stack.providers.inference.sentence_transformers as package

    assert lazy_imports(package.__name__) == ["llama_stack.providers.inference.sentence_transformers.embeddings"]
