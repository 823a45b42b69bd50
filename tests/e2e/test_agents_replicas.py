"""Two `llama stack run` processes sharing one agents store: a turn sent to each at once on the
same session runs on one and answers 409 on the other, and the session's history holds exactly
the turn that ran. The inference backend is the fake Ollama, slowed so the turns overlap."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.e2e.test_scale_out import LLM, start, stop
from tests.fakes.ollama_model import llama_vision
from tests.fakes.ollama_server import FakeOllama, serve
from tests.servers import free_port

pytest.importorskip("ollama")


@pytest.fixture(scope="module")
def ollama() -> Iterator[tuple[FakeOllama, str]]:
    fake = FakeOllama(installed=[llama_vision("llama3.2-vision:11b")])
    with serve(fake) as url:
        yield fake, url


def run_yaml(tmp_path: Path, ollama_url: str, name: str) -> Path:
    config: dict[str, Any] = {
        "version": 2,
        "image_name": "agents-replicas",
        "providers": {
            "inference": [{"provider_id": "ollama", "provider_type": "remote::ollama", "config": {"url": ollama_url}}],
            "agents": [
                {
                    "provider_id": "meta-reference",
                    "provider_type": "inline::meta-reference",
                    "config": {"persistence_store": {"type": "sqlite", "db_path": str(tmp_path / "agents.db")}},
                }
            ],
        },
        "metadata_store": {"type": "sqlite", "db_path": str(tmp_path / f"{name}-registry.db")},
        "models": [{"model_id": LLM, "provider_id": "ollama"}],
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_concurrent_turns_on_one_session_from_two_processes_run_one_and_refuse_the_other(
    tmp_path: Path, ollama: tuple[FakeOllama, str]
) -> None:
    fake, url = ollama
    ports = [free_port(), free_port()]
    servers = [start(run_yaml(tmp_path, url, "a"), ports[0])]
    try:
        servers.append(start(run_yaml(tmp_path, url, "b"), ports[1]))
        a, b = (httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) for port in ports)
        agent_config = {"model": LLM, "instructions": "Be brief.", "enable_session_persistence": True}
        agent_id = a.post("/alpha/agents/create", json={"agent_config": agent_config}).json()["agent_id"]
        created = b.post("/alpha/agents/session/create", json={"agent_id": agent_id, "session_name": "shared"})
        session_id = created.json()["session_id"]
        answers: dict[str, httpx.Response] = {}

        def turn(name: str, replica: httpx.Client) -> None:
            messages = [{"role": "user", "content": f"hello from {name}"}]
            body = {"agent_id": agent_id, "session_id": session_id, "messages": messages, "stream": True}
            answers[name] = replica.post("/alpha/agents/turn/create", json=body)

        fake.stall_s = 2.0  # each answer starts two seconds after it is asked for
        try:
            threads = [threading.Thread(target=turn, args=args) for args in (("a", a), ("b", b))]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        finally:
            fake.stall_s = 0.0

        statuses = sorted(response.status_code for response in answers.values())
        assert statuses == [200, 409]
        (refused,) = (r for r in answers.values() if r.status_code == 409)
        assert "is running another turn" in refused.json()["error"]["message"]
        (ran,) = (name for name, r in answers.items() if r.status_code == 200)
        session = a.get("/alpha/agents/session/get", params={"agent_id": agent_id, "session_id": session_id}).json()
        assert [t["input_messages"][0]["content"] for t in session["turns"]] == [f"hello from {ran}"]

        # Once it has ended, the other replica continues the session.
        messages = [{"role": "user", "content": "again"}]
        again = b.post(
            "/alpha/agents/turn/create", json={"agent_id": agent_id, "session_id": session_id, "messages": messages}
        )
        assert again.status_code == 200
    finally:
        assert [stop(server) for server in servers] == [0] * len(servers)
