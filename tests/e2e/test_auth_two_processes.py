"""Two `llama stack run` processes with their own registries share one Redis for quotas: a key's
requests per minute are counted across both, on both faces, with the official clients. The
inference backend is the fake Ollama (no torch in the servers)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml
from llama_stack_client import LlamaStackClient

from tests.e2e.test_scale_out import LLM, free_port, start, stop
from tests.fakes.ollama_model import llama_vision
from tests.fakes.ollama_server import FakeOllama, serve

pytest.importorskip("ollama")

TEAM_KEY = "sk-team-key-0123456789abcdef"
OPS_KEY = "sk-ops-key-0123456789abcdef"


@pytest.fixture(scope="module")
def ollama_url() -> Iterator[str]:
    with serve(FakeOllama(installed=[llama_vision("llama3.2-vision:11b")])) as url:
        yield url


def run_yaml(tmp_path: Path, ollama_url: str, redis_url: str) -> Path:
    config: dict[str, Any] = {
        "version": 2,
        "image_name": "quota-shared",
        "providers": {
            "inference": [{"provider_id": "ollama", "provider_type": "remote::ollama", "config": {"url": ollama_url}}]
        },
        # Each process keeps its own registry: only the quota counters are shared, through Redis.
        "metadata_store": {"type": "sqlite", "db_path": "${env.REGISTRY_DB}"},
        "models": [{"model_id": LLM, "provider_id": "ollama"}],
        "server": {
            "auth": {
                "keys": [
                    {"name": "team", "key_env": "TEAM_KEY", "scopes": {"apis": ["inference", "models"]}},
                    {"name": "ops", "key_env": "OPS_KEY"},
                ]
            },
            "quotas": {
                "requests_per_minute": 3,
                "store": {"type": "redis", "url": redis_url, "namespace": f"quotas{uuid.uuid4().hex}"},
            },
        },
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def fresh_minute(margin_s: float = 15.0) -> None:
    """The counters are per clock minute: run the four requests well inside one."""
    left = 60 - time.time() % 60
    if left < margin_s:
        time.sleep(left + 0.05)


def test_a_requests_per_minute_quota_holds_across_two_processes(
    tmp_path: Path, ollama_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = run_yaml(tmp_path, ollama_url, redis_url)
    port_a, port_b = free_port(), free_port()
    monkeypatch.setenv("TEAM_KEY", TEAM_KEY)  # `start` hands the test's environment to the servers
    monkeypatch.setenv("OPS_KEY", OPS_KEY)
    monkeypatch.setenv("REGISTRY_DB", str(tmp_path / "a.db"))
    servers = [start(path, port_a)]
    try:
        monkeypatch.setenv("REGISTRY_DB", str(tmp_path / "b.db"))
        servers.append(start(path, port_b))
        url_a, url_b = f"http://127.0.0.1:{port_a}", f"http://127.0.0.1:{port_b}"
        for url in (url_a, url_b):
            assert httpx.get(f"{url}/alpha/models/list").status_code == 401
            assert httpx.get(f"{url}/alpha/health").status_code == 200

        alpha_a = LlamaStackClient(base_url=url_a, default_headers={"Authorization": f"Bearer {TEAM_KEY}"})
        openai_b = openai.OpenAI(base_url=f"{url_b}/v1", api_key=TEAM_KEY, max_retries=0)
        messages: Any = [{"role": "user", "content": "hello"}]
        fresh_minute()

        for _ in range(2):  # two requests on A, on the /alpha face
            reply = alpha_a.inference.chat_completion(model_id=LLM, messages=messages)
            assert reply.completion_message.role == "assistant"
        assert openai_b.chat.completions.create(model=LLM, messages=messages).choices[0].message.content

        with pytest.raises(openai.RateLimitError) as limited:  # the fourth, on B, is one too many
            openai_b.chat.completions.create(model=LLM, messages=messages)
        assert 1 <= int(limited.value.response.headers["retry-after"]) <= 60
        assert "API key 'team' may make 3 requests per minute" in limited.value.message

        refused = httpx.post(
            f"{url_a}/alpha/inference/chat-completion",
            json={"model_id": LLM, "messages": messages},
            headers={"Authorization": f"Bearer {TEAM_KEY}"},
        )
        assert refused.status_code == 429 and "retry-after" in refused.headers
        assert refused.json()["error"]["type"] == "rate_limited"

        # Another key keeps its own count, on either process.
        ops = httpx.get(f"{url_b}/v1/models", headers={"Authorization": f"Bearer {OPS_KEY}"})
        assert ops.status_code == 200 and [m["id"] for m in ops.json()["data"]] == [LLM]
    finally:
        assert [stop(server) for server in servers] == [0] * len(servers)
