"""The Ollama compose stack (deploy/compose/ollama) started by podman-compose, as an operator starts
it, with two server replicas on one Postgres (pgvector) and one Redis.

No registry is reachable here, so compose.local.yaml puts local images in place of the registry
ones: Debian's Postgres with pgvector and Redis (deploy/podman/build-services-image.sh) and the
fake Ollama of tests/fakes in the server's own image; compose.replicas.yaml adds the second
replica. The official llama-stack-client 0.0.63 drives both replicas:

- an agent and its session made through replica A continue through replica B, which sees A's
  turns, and a bank registered and filled through A is queried through B;
- replica A killed (SIGKILL) while it streams a chat leaves B serving chats and turns.

Each step prints its build and start-to-healthy times (`pytest -s`).
"""

from __future__ import annotations

import hashlib
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from llama_stack_client import LlamaStackClient

from tests.deploy.engine import ROOT, Image, Podman, build_image, podman_or_skip
from tests.servers import free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]

STACK = ROOT / "deploy" / "compose" / "ollama"
SERVICES_SCRIPT = ROOT / "deploy" / "podman" / "build-services-image.sh"
SERVICES_INPUTS = (SERVICES_SCRIPT, ROOT / "deploy" / "podman" / "services" / "postgres-entrypoint.sh")
PROJECT = "llamastack-compose-test"
FILES = ("compose.yaml", "compose.local.yaml", "compose.replicas.yaml")
MODEL = "meta-llama/Llama-3.2-3B-Instruct"
EMBEDDER = "all-MiniLM-L6-v2"


def services_image_tag() -> str:
    """Named by the hash of what builds it: an unchanged script and entrypoint reuse the image that
    podman's storage keeps from an earlier run (its Debian packages are not pinned, so reuse means
    the packages of that earlier day; change either file, or remove the tag, for today's)."""
    digest = hashlib.sha256(b"".join(path.read_bytes() for path in SERVICES_INPUTS)).hexdigest()[:12]
    return f"localhost/llamastack-services:{digest}"


@pytest.fixture(scope="module")
def podman() -> Podman:
    engine = podman_or_skip()
    if shutil.which("podman-compose") is None:
        pytest.skip("compose tier: podman-compose is not installed (scripts/install-container-engine.sh installs it)")
    return engine


@pytest.fixture(scope="module")
def services_image(podman: Podman) -> str:
    tag = services_image_tag()
    if podman("image", "exists", tag, check=False).returncode != 0:
        started = time.monotonic()
        built = subprocess.run(
            ["bash", str(SERVICES_SCRIPT), tag], env=podman.env, capture_output=True, text=True, timeout=900
        )
        assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-3000:]
        print(f"\nservices image built in {time.monotonic() - started:.0f} s")
    size = int(podman("image", "inspect", "--format", "{{.Size}}", tag).stdout.strip())
    print(f"\nservices image {tag}: {size / 1e6:.0f} MB")
    return tag


@pytest.fixture(scope="module")
def stack_image(podman: Podman, tmp_path_factory: pytest.TempPathFactory) -> Image:
    image = build_image(
        podman, tmp_path_factory.mktemp("compose-ollama-image"), "localhost/llamastack-compose-ollama:test",
        "--config", str(STACK / "build.yaml"),
    )  # fmt: skip
    print(f"\ncompose-ollama image: {image.size_bytes / 1e9:.2f} GB, built in {image.build_seconds:.0f} s")
    return image


@dataclass
class Stack:
    podman: Podman
    folder: Path
    env: dict[str, str]
    url_a: str
    url_b: str

    def compose(self, *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess[str]:
        files = [arg for name in FILES for arg in ("-f", str(self.folder / name))]
        completed = subprocess.run(
            ["podman-compose", "-p", PROJECT, *files, *args],
            cwd=self.folder, env=self.env, capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip
        output = completed.stdout[-2000:] + completed.stderr[-3000:]
        assert completed.returncode == 0 or not check, f"podman-compose {args}:\n{output}"
        return completed

    def container(self, service: str) -> str:
        return f"{PROJECT}_{service}_1"  # podman-compose 1.0's naming

    def wait_healthy(self, service: str, since: float, timeout: float = 240) -> float:
        """Seconds from `since` until the service's own compose health check first passed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.podman("healthcheck", "run", self.container(service), check=False, timeout=30).returncode == 0:
                return time.monotonic() - since
            time.sleep(0.5)
        logs = self.podman("logs", self.container(service), check=False)
        raise AssertionError(f"{service} never became healthy:\n{(logs.stdout + logs.stderr)[-4000:]}")

    def remove(self) -> None:
        """Containers, volumes and the project's network: podman-compose 1.0's `down` leaves the
        last two."""
        self.compose("down", "-t", "0", check=False)
        volumes = self.podman("volume", "ls", "-q", "--filter", f"name={PROJECT}_", check=False).stdout.split()
        if volumes:
            self.podman("volume", "rm", "-f", *volumes, check=False)
        self.podman("network", "rm", "-f", f"{PROJECT}_default", check=False)


@pytest.fixture(scope="module")
def stack(
    podman: Podman, services_image: str, stack_image: Image, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """The stack's files copied beside a fresh .env (random passwords), so nothing is written into
    the checkout; the fake Ollama gets the checkout's tests/ mounted."""
    folder = tmp_path_factory.mktemp("compose") / "ollama"
    shutil.copytree(STACK, folder, ignore=shutil.ignore_patterns("image", ".env"))
    env_file = (STACK / ".env.example").read_text()
    for secret in ("POSTGRES_PASSWORD", "REDIS_PASSWORD"):
        env_file = env_file.replace(f"{secret}=change-me", f"{secret}={secrets.token_hex(12)}")
    assert "=change-me" not in env_file
    (folder / ".env").write_text(env_file)
    port_a, port_b = free_port(), free_port()
    env = {
        **podman.env,
        "LLAMA_STACK_IMAGE": stack_image.tag,
        "SERVICES_IMAGE": services_image,
        "LLAMA_STACK_TESTS": str(ROOT / "tests"),
        "LLAMA_STACK_PORT": str(port_a),
        "LLAMA_STACK_PORT_B": str(port_b),
        # Slow enough that a streamed chat is still open when the test kills its replica.
        "FAKE_OLLAMA_TOKEN_DELAY_S": "0.05",
    }
    running = Stack(podman, folder, env, f"http://127.0.0.1:{port_a}", f"http://127.0.0.1:{port_b}")
    running.remove()  # what an interrupted run left
    try:
        started = time.monotonic()
        # podman-compose 1.0 starts services in dependency order but does not wait for
        # `condition: service_healthy`: the test waits, as docker compose would, before the servers.
        running.compose("up", "-d", "postgres", "redis", "ollama")
        for service in ("postgres", "redis", "ollama"):
            print(f"\n{service}: healthy {running.wait_healthy(service, started):.1f} s after `up`")
        started = time.monotonic()
        running.compose("up", "-d", "--no-deps", "llamastack", "llamastack-b")
        for service in ("llamastack", "llamastack-b"):
            print(f"{service}: healthy {running.wait_healthy(service, started):.1f} s after `up`")
        yield running
    finally:
        running.remove()


def client(url: str) -> Any:
    return LlamaStackClient(base_url=url, timeout=60, max_retries=0)


def agent_config() -> dict[str, Any]:
    return {
        "model": MODEL,
        "instructions": "You are a helpful assistant.",
        "enable_session_persistence": True,
        "max_infer_iters": 1,
        "sampling_params": {"strategy": "greedy", "max_tokens": 16},
    }


def test_a_session_made_through_one_replica_continues_through_the_other(stack: Stack) -> None:
    a, b = client(stack.url_a), client(stack.url_b)
    agent = a.agents.create(agent_config=agent_config())
    session = a.agents.session.create(agent_id=agent.agent_id, session_name="two-replicas")
    first = a.agents.turn.create(
        agent_id=agent.agent_id, session_id=session.session_id,
        messages=[{"role": "user", "content": "Hello from replica A"}], stream=False,
    )  # fmt: skip
    second = b.agents.turn.create(
        agent_id=agent.agent_id, session_id=session.session_id,
        messages=[{"role": "user", "content": "Hello from replica B"}], stream=False,
    )  # fmt: skip
    assert second.output_message.content
    # Both replicas read the session from Postgres: each sees both turns, in order.
    for replica in (a, b):
        kept = replica.agents.session.retrieve(agent_id=agent.agent_id, session_id=session.session_id)
        assert [t.turn_id for t in kept.turns] == [first.turn_id, second.turn_id]

    # A bank registered and filled through A lives in pgvector (its keyword index in Redis): B queries it.
    bank_params: Any = {"memory_bank_type": "vector", "embedding_model": EMBEDDER, "chunk_size_in_tokens": 64}
    a.memory_banks.register(memory_bank_id="shared", params=bank_params)
    documents: Any = [{"document_id": "wool", "content": "Llama wool is soft and lanolin-free.", "metadata": {}}]
    a.memory.insert(bank_id="shared", documents=documents)
    found = b.memory.query(bank_id="shared", query="Llama wool is soft", params={"max_chunks": 1})
    assert [c.document_id for c in found.chunks] == ["wool"]


def test_a_replica_killed_mid_stream_leaves_the_other_serving(stack: Stack) -> None:
    a, b = client(stack.url_a), client(stack.url_b)
    agent = b.agents.create(agent_config=agent_config())
    session = b.agents.session.create(agent_id=agent.agent_id, session_name="failover")

    stream = a.inference.chat_completion(
        model_id=MODEL,
        messages=[{"role": "user", "content": "count to 200"}],
        sampling_params={"strategy": "greedy", "max_tokens": 400},
        stream=True,
    )
    received = 0
    try:
        for _ in stream:
            received += 1
            if received == 5:
                stack.podman("kill", "-s", "KILL", stack.container("llamastack"))
    except httpx.HTTPError:
        pass  # the connection broke: the client sees the stream end without its last event
    else:
        raise AssertionError(f"the stream went on after its server was killed ({received} events)")
    assert received >= 5

    killed_at = time.monotonic()
    reply = b.inference.chat_completion(model_id=MODEL, messages=[{"role": "user", "content": "Are you there?"}])
    assert reply.completion_message.content
    turn = b.agents.turn.create(
        agent_id=agent.agent_id, session_id=session.session_id,
        messages=[{"role": "user", "content": "Still serving?"}], stream=False,
    )  # fmt: skip
    assert turn.output_message.content
    print(f"\nreplica B answered a chat and a turn {time.monotonic() - killed_at:.1f} s after A was killed")
