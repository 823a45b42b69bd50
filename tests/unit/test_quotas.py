"""Quotas per API key on both faces: requests per minute and tokens per day, answered with 429 and
Retry-After, counted in the kvstore so that apps sharing a store share the counts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any, cast

import httpx
import openai
import pytest

from llama_stack.distribution.resolver import build_stack
from llama_stack.distribution.spec import ConfigError, parse_run_config
from llama_stack.server.app import create_app

KEY_A = "sk-quota-key-a-0123456789"
KEY_B = "sk-quota-key-b-0123456789"
ADMIN = "sk-quota-admin-0123456789"
KEYS = [{"name": "a", "key": KEY_A}, {"name": "b", "key": KEY_B}, {"name": "admin", "key": ADMIN}]


def run_config(db: Path, **server: Any) -> dict[str, Any]:
    return {
        "version": 2,
        "image_name": "quotas",
        "providers": {"inference": [{"provider_id": "scripted", "provider_type": "test::scripted"}]},
        "metadata_store": {"type": "sqlite", "db_path": str(db)},
        "models": [{"model_id": "echo"}],
        "server": server,
    }


MakeClient = Callable[..., Coroutine[Any, Any, httpx.AsyncClient]]


@pytest.fixture
async def make_client(tmp_path: Path) -> AsyncIterator[MakeClient]:
    opened: list[Any] = []

    async def make(server: dict[str, Any], db: str = "registry.db") -> httpx.AsyncClient:
        stack = await build_stack(parse_run_config(run_config(tmp_path / db, **server), env={}))
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(stack)), base_url="http://stack")
        opened.append((client, stack))
        return client

    yield make
    for client, stack in opened:
        await client.aclose()
        await stack.shutdown()


async def fresh_minute(margin_s: float = 10.0) -> None:
    """The counters are per clock minute: start a test early enough in one to end in it."""
    left = 60 - time.time() % 60
    if left < margin_s:
        await asyncio.sleep(left + 0.05)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def alpha_chat(text: str = "hello there", **extra: Any) -> dict[str, Any]:
    return {"model_id": "echo", "messages": [{"role": "user", "content": text}], **extra}


def v1_chat(text: str = "hello there", **extra: Any) -> dict[str, Any]:
    return {"model": "echo", "messages": [{"role": "user", "content": text}], **extra}


async def test_requests_per_minute_are_counted_per_key_on_both_faces(make_client: MakeClient) -> None:
    http = await make_client({"auth": {"keys": KEYS}, "quotas": {"requests_per_minute": 3}})
    await fresh_minute()
    for _ in range(5):  # health checks are not counted
        assert (await http.get("/alpha/health")).status_code == 200
    answers = [
        await http.post("/alpha/inference/chat-completion", json=alpha_chat(), headers=bearer(KEY_A)),
        await http.post("/v1/chat/completions", json=v1_chat(), headers=bearer(KEY_A)),
        await http.get("/v1/models", headers=bearer(KEY_A)),
    ]
    assert [answer.status_code for answer in answers] == [200, 200, 200]

    v1 = await http.post("/v1/chat/completions", json=v1_chat(), headers=bearer(KEY_A))
    assert v1.status_code == 429
    assert 1 <= int(v1.headers["retry-after"]) <= 60
    assert v1.headers["x-should-retry"] == "true"
    error = v1.json()["error"]
    assert error["type"] == "rate_limited" and error["code"] == 429
    assert error["message"].startswith("rate limit reached: API key 'a' may make 3 requests per minute; retry in ")

    alpha = await http.post("/alpha/inference/chat-completion", json=alpha_chat(), headers=bearer(KEY_A))
    assert alpha.status_code == 429 and "retry-after" in alpha.headers
    assert alpha.json()["error"]["type"] == "rate_limited" and "param" not in alpha.json()["error"]

    # Another key has its own count.
    other = await http.post("/alpha/inference/chat-completion", json=alpha_chat(), headers=bearer(KEY_B))
    assert other.status_code == 200


async def test_per_key_limits_override_the_default(make_client: MakeClient) -> None:
    quotas = {"requests_per_minute": 1, "per_key": {"admin": {"requests_per_minute": None}, "b": {}}}
    http = await make_client({"auth": {"keys": KEYS}, "quotas": quotas})
    await fresh_minute()
    for _ in range(5):
        assert (await http.get("/alpha/models/list", headers=bearer(ADMIN))).status_code == 200
    for key in (KEY_A, KEY_B):  # "b" overrides nothing: the default holds
        assert (await http.get("/alpha/models/list", headers=bearer(key))).status_code == 200
        assert (await http.get("/alpha/models/list", headers=bearer(key))).status_code == 429


async def test_without_auth_the_limit_holds_for_all_callers_together(make_client: MakeClient) -> None:
    http = await make_client({"quotas": {"requests_per_minute": 2}})
    await fresh_minute()
    assert (await http.get("/v1/models")).status_code == 200
    assert (await http.get("/alpha/models/list", headers=bearer("sk-anything-goes-here-123"))).status_code == 200
    refused = await http.get("/v1/models")
    assert refused.status_code == 429
    assert "API key 'anonymous' may make 2 requests per minute" in refused.json()["error"]["message"]


async def test_tokens_per_day_are_charged_from_usage_streamed_or_not(make_client: MakeClient) -> None:
    # The scripted model counts words: "hello there" is 2 prompt tokens, "echo: hello there" 3.
    http = await make_client({"auth": {"keys": KEYS}, "quotas": {"tokens_per_day": 12}})
    headers = bearer(KEY_A)
    first = await http.post("/alpha/inference/chat-completion", json=alpha_chat(), headers=headers)
    assert first.status_code == 200  # 5 tokens
    stream_options = {"include_usage": True}
    second = await http.post(
        "/v1/chat/completions", json=v1_chat(stream=True, stream_options=stream_options), headers=headers
    )
    assert second.status_code == 200 and '"total_tokens":5' in second.text  # 10 tokens
    third = await http.post("/alpha/inference/chat-completion", json=alpha_chat(stream=True), headers=headers)
    assert third.status_code == 200  # under the limit when it started: it finishes (15 tokens)

    for refused in (
        await http.post("/alpha/inference/chat-completion", json=alpha_chat(), headers=headers),
        await http.post("/v1/chat/completions", json=v1_chat(stream=True), headers=headers),
    ):
        assert refused.status_code == 429
        assert 0 < int(refused.headers["retry-after"]) <= 86_400
        assert "token quota reached: API key 'a' has used 15 of its 12 tokens for today (UTC)" in refused.text
    # Registries spend no tokens, and another key has its own count.
    assert (await http.get("/v1/models", headers=headers)).status_code == 200
    assert (await http.post("/v1/chat/completions", json=v1_chat(), headers=bearer(KEY_B))).status_code == 200


async def test_apps_sharing_a_quota_store_share_the_counts(make_client: MakeClient, tmp_path: Path) -> None:
    shared = {"type": "sqlite", "db_path": str(tmp_path / "quotas.db")}
    server = {"auth": {"keys": KEYS}, "quotas": {"requests_per_minute": 3, "store": shared}}
    one = await make_client(server, db="one.db")
    two = await make_client(server, db="two.db")
    await fresh_minute()
    statuses = [
        (await one.get("/v1/models", headers=bearer(KEY_A))).status_code,
        (await one.get("/v1/models", headers=bearer(KEY_A))).status_code,
        (await two.get("/v1/models", headers=bearer(KEY_A))).status_code,
        (await two.get("/v1/models", headers=bearer(KEY_A))).status_code,
        (await one.get("/v1/models", headers=bearer(KEY_A))).status_code,
    ]
    assert statuses == [200, 200, 200, 429, 429]


async def test_the_official_openai_client_gets_a_rate_limit_error(make_client: MakeClient) -> None:
    http = await make_client({"auth": {"keys": KEYS}, "quotas": {"requests_per_minute": 1}})
    client = openai.AsyncOpenAI(base_url="http://stack/v1", api_key=KEY_B, http_client=cast(Any, http), max_retries=0)
    await fresh_minute()
    await client.models.list()
    with pytest.raises(openai.RateLimitError) as limited:
        await client.chat.completions.create(model="echo", messages=[{"role": "user", "content": "again"}])
    assert int(limited.value.response.headers["retry-after"]) >= 1


async def test_an_unreachable_quota_store_is_a_clear_503(make_client: MakeClient) -> None:
    store = {"type": "redis", "url": "redis://127.0.0.1:1/0"}
    http = await make_client({"auth": {"keys": KEYS}, "quotas": {"requests_per_minute": 5, "store": store}})
    for path in ("/v1/models", "/alpha/models/list"):
        refused = await http.get(path, headers=bearer(KEY_A))
        assert refused.status_code == 503 and refused.headers["x-should-retry"] == "true"
        assert refused.json()["error"]["message"] == (
            "the quota store is unavailable, so requests cannot be counted; retry later"
        )
    assert (await http.get("/alpha/health")).status_code == 200


def test_per_key_limits_must_name_a_configured_key(tmp_path: Path) -> None:
    server = {"auth": {"keys": KEYS}, "quotas": {"per_key": {"ghost": {"requests_per_minute": 1}}}}
    with pytest.raises(ConfigError, match=r"quotas\.per_key names keys that server\.auth does not define: ghost"):
        parse_run_config(run_config(tmp_path / "r.db", **server), env={})
    with pytest.raises(ConfigError, match=r"server\.quotas\.requests_per_minute: Input should be greater than 0"):
        parse_run_config(run_config(tmp_path / "r.db", quotas={"requests_per_minute": 0}), env={})
