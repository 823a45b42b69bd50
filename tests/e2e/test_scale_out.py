"""Two server processes on one Postgres share what clients make on either; `--workers N` serves
one port from N processes. The inference backend is the fake Ollama (no torch in the servers)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from llama_stack_client import LlamaStackClient

from tests.fakes.ollama_model import embedder, llama_vision
from tests.fakes.ollama_server import FakeOllama, serve
from tests.servers import free_port

pytest.importorskip("ollama")
LLAMA = str(Path(sys.executable).with_name("llama"))
LLM = "Llama3.2-11B-Vision-Instruct"


def run_yaml(tmp_path: Path, ollama_url: str, postgres_dsn: str) -> Path:
    config: dict[str, Any] = {
        "version": 2,
        "image_name": "shared",
        "providers": {
            "inference": [{"provider_id": "ollama", "provider_type": "remote::ollama", "config": {"url": ollama_url}}],
            "memory": [
                {
                    "provider_id": "pgvector",
                    "provider_type": "remote::pgvector",
                    "config": {"dsn": postgres_dsn, "table_prefix": "scaleout"},
                }
            ],
            "agents": [
                {
                    "provider_id": "meta-reference",
                    "provider_type": "inline::meta-reference",
                    "config": {
                        "persistence_store": {"type": "postgres", "dsn": postgres_dsn, "table_name": "scaleout_agents"}
                    },
                }
            ],
        },
        "metadata_store": {"type": "postgres", "dsn": postgres_dsn, "table_name": "scaleout_registry"},
        "models": [
            {"model_id": LLM, "provider_id": "ollama"},
            {
                "model_id": "all-minilm:l6-v2",
                "provider_id": "ollama",
                "model_type": "embedding",
                "metadata": {"embedding_dimension": 384},
            },
        ],
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def start(path: Path, port: int, *extra: str) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [LLAMA, "stack", "run", str(path), "--port", str(port), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise AssertionError(f"server exited: {process.stdout.read() if process.stdout else ''}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/alpha/health", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.1)
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError("server did not start in 60 s")


def stop(process: subprocess.Popen[str]) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(timeout=30)


@pytest.fixture(scope="module")
def ollama_url() -> Iterator[str]:
    fake = FakeOllama(installed=[llama_vision("llama3.2-vision:11b"), embedder("all-minilm:l6-v2", 384)])
    with serve(fake) as url:
        yield url


def test_two_processes_on_one_postgres_share_registrations_banks_and_sessions(
    tmp_path: Path, ollama_url: str, postgres_dsn: str
) -> None:
    path = run_yaml(tmp_path, ollama_url, postgres_dsn)
    first_port, second_port = free_port(), free_port()
    first, second = start(path, first_port), start(path, second_port)
    try:
        one = LlamaStackClient(base_url=f"http://127.0.0.1:{first_port}")
        two = LlamaStackClient(base_url=f"http://127.0.0.1:{second_port}")

        one.models.register(model_id="alias-made-on-one", provider_model_id=LLM, provider_id="ollama")
        assert two.models.retrieve(identifier="alias-made-on-one").provider_resource_id == LLM
        reply = two.inference.chat_completion(
            model_id="alias-made-on-one", messages=[{"role": "user", "content": "hello"}]
        )
        assert reply.completion_message.role == "assistant"

        one.memory_banks.register(
            memory_bank_id="shared-bank",
            params={"memory_bank_type": "vector", "embedding_model": "all-minilm:l6-v2", "chunk_size_in_tokens": 64},
        )
        one.memory.insert(
            bank_id="shared-bank",
            documents=[{"document_id": "llamas", "content": "Llamas are camelids from the Andes.", "metadata": {}}],
        )
        found = two.memory.query(bank_id="shared-bank", query="Where do llamas come from?")
        assert [chunk.document_id for chunk in found.chunks] == ["llamas"]

        agent = one.agents.create(
            agent_config={
                "model": LLM,
                "instructions": "Be brief.",
                "enable_session_persistence": True,
                "max_infer_iters": 1,
            }
        )
        session = one.agents.session.create(agent_id=agent.agent_id, session_name="made-on-one")
        seen = two.agents.session.retrieve(agent_id=agent.agent_id, session_id=session.session_id)
        assert seen.session_name == "made-on-one" and seen.turns == []
    finally:
        assert stop(first) == 0 and stop(second) == 0


def test_workers_serve_one_port_and_stop_cleanly(tmp_path: Path, ollama_url: str, postgres_dsn: str) -> None:
    port = free_port()
    server = start(run_yaml(tmp_path, ollama_url, postgres_dsn), port, "--workers", "2")
    try:
        client = LlamaStackClient(base_url=f"http://127.0.0.1:{port}")
        assert LLM in {m.identifier for m in client.models.list()}
        children = subprocess.run(["pgrep", "-P", str(server.pid)], capture_output=True, text=True).stdout.split()
        assert len(children) == 2
    finally:
        assert stop(server) == 0
