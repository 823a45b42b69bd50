"""API keys with scopes on both faces: 401 and 403 with each face's error envelope, an open health
check, keys from the environment, and no key or provider secret ever shown or logged."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any, cast

import httpx
import openai
import pytest

from llama_stack.client import AsyncLlamaStackClient
from llama_stack.client.errors import AuthenticationError, PermissionDeniedError
from llama_stack.distribution.registry import install_provider
from llama_stack.distribution.resolver import build_stack
from llama_stack.distribution.spec import ConfigError, parse_run_config
from llama_stack.server.app import create_app
from tests.sdk.scripted_agents import SCRIPTED_AGENTS_SPEC

ADMIN_KEY = "sk-admin-0123456789abcdef"
CHAT_KEY = "sk-chat-only-echo-0123456789"
MODELS_KEY = "sk-models-reader-0123456789"
UNKNOWN_KEY = "sk-nobody-knows-me-0123456789"

KEYS = [
    {"name": "admin", "key": ADMIN_KEY},
    {"name": "chat", "key": CHAT_KEY, "scopes": {"apis": ["inference"], "models": ["echo"]}},
    {"name": "reader", "key": MODELS_KEY, "scopes": {"apis": ["models", "inspect"]}},
]


def run_config(tmp_path: Path, **server: Any) -> dict[str, Any]:
    return {
        "version": 2,
        "image_name": "auth",
        "providers": {"inference": [{"provider_id": "scripted", "provider_type": "test::scripted"}]},
        "metadata_store": {"type": "sqlite", "db_path": str(tmp_path / "registry.db")},
        "models": [{"model_id": "echo"}, {"model_id": "other"}, {"model_id": "vectors", "model_type": "embedding"}],
        "server": server,
    }


MakeClient = Callable[..., Coroutine[Any, Any, httpx.AsyncClient]]


@pytest.fixture
async def make_client(tmp_path: Path) -> AsyncIterator[MakeClient]:
    """Clients of apps built from run configs; env is what ${env.*} and key_env read."""
    opened: list[Any] = []

    async def make(
        server: dict[str, Any], env: dict[str, str] | None = None, providers: dict[str, Any] | None = None
    ) -> httpx.AsyncClient:
        config = run_config(tmp_path, **server)
        config["providers"].update(providers or {})
        stack = await build_stack(parse_run_config(config, env=env or {}))
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(stack)), base_url="http://stack")
        opened.append((client, stack))
        return client

    yield make
    for client, stack in opened:
        await client.aclose()
        await stack.shutdown()


@pytest.fixture
async def http(make_client: MakeClient) -> httpx.AsyncClient:
    return await make_client({"auth": {"keys": KEYS}})


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def chat(model: str = "echo", text: str = "hi", **extra: Any) -> dict[str, Any]:
    return {"model_id": model, "messages": [{"role": "user", "content": text}], **extra}


def openai_chat(model: str = "echo", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}


async def test_a_request_without_a_key_is_401_in_each_faces_envelope(http: httpx.AsyncClient) -> None:
    alpha = await http.post("/alpha/inference/chat-completion", json=chat())
    assert alpha.status_code == 401
    assert alpha.headers["www-authenticate"] == "Bearer"
    assert alpha.headers["x-should-retry"] == "false"
    assert alpha.json() == {
        "error": {
            "type": "unauthorized",
            "message": "missing API key: send it in the header 'Authorization: Bearer <key>'",
        }
    }

    v1 = await http.post("/v1/chat/completions", json=openai_chat())
    assert v1.status_code == 401
    error = v1.json()["error"]
    assert error["type"] == "unauthorized" and error["code"] == 401 and error["param"] is None
    assert "Authorization: Bearer" in error["message"]


async def test_an_unknown_or_malformed_key_is_401(http: httpx.AsyncClient) -> None:
    for headers in (bearer(UNKNOWN_KEY), {"Authorization": ADMIN_KEY}, {"Authorization": "Basic YWxhZGRpbjpvcGVu"}):
        response = await http.get("/alpha/models/list", headers=headers)
        assert response.status_code == 401, headers
    unknown = await http.get("/v1/models", headers=bearer(UNKNOWN_KEY))
    assert unknown.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert unknown.json()["error"]["message"] == "invalid API key: the bearer token matches no key of this server"
    # Unknown paths do not tell an anonymous caller which routes exist.
    assert (await http.get("/alpha/nowhere")).status_code == 401


async def test_health_and_the_schema_stay_open(http: httpx.AsyncClient) -> None:
    assert (await http.get("/alpha/health")).json() == {"status": "OK"}
    assert (await http.get("/openapi.json")).status_code == 200


async def test_health_details_the_providers_only_to_a_known_key(http: httpx.AsyncClient) -> None:
    # Provider ids and start errors describe the deployment: a caller without a key gets the state.
    anonymous = await http.get("/alpha/health", params={"detail": "true"})
    assert anonymous.status_code == 200 and anonymous.json() == {"status": "OK", "ready": True}
    for headers in (bearer("not-a-key"), {}):
        assert "providers" not in (await http.get("/alpha/health?detail=true", headers=headers)).json()
    known = (await http.get("/alpha/health", params={"detail": "true"}, headers=bearer(CHAT_KEY))).json()
    assert [p["provider_id"] for p in known["providers"]] == ["scripted"]


async def test_a_valid_key_works_on_both_faces_and_the_scheme_is_case_insensitive(http: httpx.AsyncClient) -> None:
    alpha = await http.post("/alpha/inference/chat-completion", json=chat(), headers=bearer(ADMIN_KEY))
    assert alpha.status_code == 200
    assert alpha.json()["completion_message"]["content"] == "echo: hi"
    v1 = await http.post("/v1/chat/completions", json=openai_chat(), headers={"authorization": f"bearer {ADMIN_KEY}"})
    assert v1.json()["choices"][0]["message"]["content"] == "echo: hi"


async def test_a_key_without_the_api_is_403(http: httpx.AsyncClient) -> None:
    alpha = await http.get("/alpha/models/list", headers=bearer(CHAT_KEY))
    assert alpha.status_code == 403
    assert alpha.json() == {"error": {"type": "forbidden", "message": "API key 'chat' may not call the models API"}}
    v1 = await http.get("/v1/models", headers=bearer(CHAT_KEY))
    assert v1.status_code == 403 and v1.json()["error"]["code"] == 403

    reader = await http.post("/alpha/inference/chat-completion", json=chat(), headers=bearer(MODELS_KEY))
    assert reader.status_code == 403
    assert "may not call the inference API" in reader.json()["error"]["message"]
    assert (await http.get("/alpha/providers/list", headers=bearer(MODELS_KEY))).status_code == 200
    assert (await http.get("/alpha/models/list", headers=bearer(MODELS_KEY))).status_code == 200


async def test_a_key_without_the_model_is_403_streaming_or_not(http: httpx.AsyncClient) -> None:
    headers = bearer(CHAT_KEY)
    for stream in (False, True):
        allowed = await http.post("/alpha/inference/chat-completion", json=chat(stream=stream), headers=headers)
        assert allowed.status_code == 200
        alpha = await http.post("/alpha/inference/chat-completion", json=chat("other", stream=stream), headers=headers)
        assert alpha.status_code == 403, stream
        assert alpha.json()["error"]["message"] == "API key 'chat' may not use model 'other' (it may use: echo)"
        v1 = await http.post("/v1/chat/completions", json=openai_chat("other", stream=stream), headers=headers)
        assert v1.status_code == 403 and v1.json()["error"]["type"] == "forbidden"
    completion = await http.post("/v1/completions", json={"model": "other", "prompt": "x"}, headers=headers)
    assert completion.status_code == 403
    embeddings = await http.post("/v1/embeddings", json={"model": "vectors", "input": "x"}, headers=headers)
    assert embeddings.status_code == 403
    # The admin key covers every model.
    other = await http.post("/v1/chat/completions", json=openai_chat("other"), headers=bearer(ADMIN_KEY))
    assert other.status_code == 200


async def test_an_agent_on_a_model_outside_the_key_is_403(make_client: MakeClient) -> None:
    install_provider(SCRIPTED_AGENTS_SPEC)
    keys = [{"name": "agent", "key": CHAT_KEY, "scopes": {"apis": ["agents"], "models": ["echo"]}}]
    agents = [{"provider_id": "agents", "provider_type": "test::scripted-agents"}]
    http = await make_client({"auth": {"keys": keys}}, providers={"agents": agents})
    for model, status in (("echo", 200), ("other", 403)):
        body = {"agent_config": {"model": model, "instructions": "be brief"}}
        created = await http.post("/alpha/agents/create", json=body, headers=bearer(CHAT_KEY))
        assert created.status_code == status, created.text


async def test_the_official_openai_client_sees_typed_errors(http: httpx.AsyncClient) -> None:
    def client(key: str) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url="http://stack/v1", api_key=key, http_client=cast(Any, http), max_retries=0)

    reply = await client(CHAT_KEY).chat.completions.create(model="echo", messages=[{"role": "user", "content": "yo"}])
    assert reply.choices[0].message.content == "echo: yo"
    with pytest.raises(openai.AuthenticationError):
        await client(UNKNOWN_KEY).models.list()
    with pytest.raises(openai.PermissionDeniedError) as denied:
        await client(CHAT_KEY).chat.completions.create(model="other", messages=[{"role": "user", "content": "yo"}])
    assert "may not use model 'other'" in str(denied.value)


async def test_the_project_sdk_sends_its_api_key(http: httpx.AsyncClient) -> None:
    sdk = AsyncLlamaStackClient(base_url="http://stack", api_key=CHAT_KEY, http_client=http, max_retries=0)
    reply = await sdk.inference.chat_completion(model_id="echo", messages=[{"role": "user", "content": "sdk"}])
    assert reply.completion_message.content == "echo: sdk"
    with pytest.raises(PermissionDeniedError):
        await sdk.models.list()
    anonymous = AsyncLlamaStackClient(base_url="http://stack", api_key="", http_client=http, max_retries=0)
    with pytest.raises(AuthenticationError):
        await anonymous.models.list()


async def test_keys_come_from_key_env_and_from_llama_stack_api_key(make_client: MakeClient) -> None:
    env = {"CI_KEY": "sk-from-the-environment-01", "LLAMA_STACK_API_KEY": "sk-the-operators-own-key-1"}
    http = await make_client({"auth": {"keys": [{"name": "ci", "key_env": "CI_KEY"}]}}, env=env)
    for key in env.values():
        assert (await http.get("/alpha/models/list", headers=bearer(key))).status_code == 200
    assert (await http.get("/alpha/models/list")).status_code == 401

    only_env = await make_client({}, env={"LLAMA_STACK_API_KEY": "sk-the-operators-own-key-1"})
    assert (await only_env.get("/alpha/models/list")).status_code == 401


def test_bad_key_settings_fail_at_startup_naming_the_setting(tmp_path: Path) -> None:
    def parse(keys: list[dict[str, Any]], env: dict[str, str] | None = None) -> None:
        parse_run_config(run_config(tmp_path, auth={"keys": keys}), env=env or {})

    with pytest.raises(ConfigError, match=r"server\.auth\.keys\[0\]\.key_env: environment variable CI_KEY is not set"):
        parse([{"name": "ci", "key_env": "CI_KEY"}])
    with pytest.raises(ConfigError, match="exactly one of key and key_env"):
        parse([{"name": "ci"}])
    with pytest.raises(ConfigError, match="at least 16 characters"):
        parse([{"name": "ci", "key": "short"}])
    with pytest.raises(ConfigError, match="repeated: ci"):
        parse([{"name": "ci", "key": ADMIN_KEY}, {"name": "ci", "key": CHAT_KEY}])
    with pytest.raises(ConfigError, match=r"server\.auth\.keys\[0\]\.scopes\.apis\[0\]: Input should be 'inference'"):
        parse([{"name": "ci", "key": ADMIN_KEY, "scopes": {"apis": ["telepathy"]}}])
    with pytest.raises(ConfigError, match="LLAMA_STACK_API_KEY: an API key needs at least 16 characters"):
        parse([], env={"LLAMA_STACK_API_KEY": "short"})


async def test_keys_are_never_logged_nor_shown(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    telemetry = {"request_ids": True, "log_format": "json", "metrics": True}
    http = await make_client({"auth": {"keys": KEYS}, "telemetry": telemetry})
    answers = [
        await http.post("/alpha/inference/chat-completion", json=chat(), headers=bearer(ADMIN_KEY)),
        await http.post("/alpha/inference/chat-completion", json=chat("other"), headers=bearer(CHAT_KEY)),
        await http.get("/v1/models", headers=bearer(UNKNOWN_KEY)),
        await http.get("/metrics", headers=bearer(ADMIN_KEY)),
        await http.post("/alpha/inference/chat-completion", json=chat(text="fail-now"), headers=bearer(ADMIN_KEY)),
    ]
    assert [answer.status_code for answer in answers] == [200, 403, 401, 200, 502]
    assert any(record.name == "llama_stack.access" for record in caplog.records)
    logged = caplog.text + "".join(str(vars(record)) for record in caplog.records) + "".join(capfd.readouterr())
    shown = "".join(answer.text + str(answer.headers) for answer in answers)
    for key in (ADMIN_KEY, CHAT_KEY, UNKNOWN_KEY):
        assert key not in logged
        assert key not in shown


async def test_provider_secrets_are_not_listed_nor_in_errors(make_client: MakeClient, tmp_path: Path) -> None:
    secret = "sk-provider-secret-0123456789"
    vllm: dict[str, Any] = {
        "provider_id": "vllm",
        "provider_type": "remote::vllm",
        "config": {"url": "http://127.0.0.1:9/v1", "api_key": secret, "verify_models": False, "max_retries": 0},
    }
    config = run_config(tmp_path)
    config["providers"]["inference"] = [vllm]
    config["models"] = [{"model_id": "remote", "provider_id": "vllm"}]
    stack = await build_stack(parse_run_config(config, env={}))
    try:
        assert secret not in repr(stack.config)
        transport = httpx.ASGITransport(app=create_app(stack))
        async with httpx.AsyncClient(transport=transport, base_url="http://stack") as http:
            listing = await http.get("/alpha/providers/list")
            assert listing.json() == {"inference": [{"provider_id": "vllm", "provider_type": "remote::vllm"}]}
            failed = await http.post("/alpha/inference/chat-completion", json=chat("remote"))
            assert failed.status_code >= 500
            for answer in (listing, failed, await http.post("/v1/chat/completions", json=openai_chat("remote"))):
                assert secret not in answer.text
    finally:
        await stack.shutdown()

    vllm["config"]["unknown_setting"] = True  # a startup error names the setting, not the secret
    with pytest.raises(ConfigError) as refused:
        await build_stack(parse_run_config(config, env={}))
    assert "unknown_setting" in str(refused.value) and secret not in str(refused.value)
