"""The container tier: images built by `llama stack build --image-type container`, run by podman and
driven by the official llama-stack-client 0.0.63, as an operator would.

- demo: chat, embeddings, a bank insert and query, an agent turn; as user 1000 with its state in a
  volume; a restart keeps the registry, the bank and the session; SIGTERM stops it cleanly.
- vllm: a remote distribution, against the fake OpenAI-compatible server standing in for vLLM.

Each test prints the image's size, its build time and its start-to-healthy time (`pytest -s`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from llama_stack_client import LlamaStackClient

from llama_stack.cli import build as builder
from tests.deploy.engine import BASE_IMAGE, Image, Podman, build_image, podman_or_skip, running
from tests.fakes.openai_faults import DEFAULT_MODELS, FakeState
from tests.fakes.openai_server import FakeOpenAIServer
from tests.servers import free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]

STATE = "/home/llama/.llama"


@pytest.fixture(scope="module")
def podman() -> Podman:
    return podman_or_skip()


@pytest.fixture(scope="module")
def demo_image(podman: Podman, tmp_path_factory: pytest.TempPathFactory) -> Image:
    image = build_image(
        podman, tmp_path_factory.mktemp("demo-image"), "localhost/llamastack-demo:test", "--template", "demo"
    )
    print(f"\ndemo image: {image.size_bytes / 1e9:.2f} GB, built in {image.build_seconds:.0f} s")
    return image


@pytest.fixture(scope="module")
def vllm_image(podman: Podman, tmp_path_factory: pytest.TempPathFactory) -> Image:
    image = build_image(
        podman, tmp_path_factory.mktemp("vllm-image"), "localhost/llamastack-vllm:test", "--template", "vllm"
    )
    print(f"\nvllm image: {image.size_bytes / 1e9:.2f} GB, built in {image.build_seconds:.0f} s")
    return image


@pytest.fixture
def volume(podman: Podman, request: pytest.FixtureRequest) -> Iterator[str]:
    name = f"llamastack-test-{request.node.name[:40].replace('[', '-').replace(']', '')}"
    podman("volume", "rm", "-f", name, check=False)
    podman("volume", "create", name)
    yield name
    podman("volume", "rm", "-f", name, check=False)


def official_client(url: str, timeout: float = 120) -> Any:
    """The 0.0.63 client, typed loosely: its stubs give results as unions that tests check at runtime."""
    return LlamaStackClient(base_url=url, timeout=timeout)


def models_by_type(client: Any) -> dict[str, str]:
    """The first model of each type, in the run.yaml's order."""
    first: dict[str, str] = {}
    for model in client.models.list():
        first.setdefault(model.model_type, model.identifier)
    return first


def violation(client: Any, shield_id: str, text: str, role: str = "user") -> Any:
    messages = [{"role": role, "content": text}]
    return client.safety.run_shield(shield_id=shield_id, messages=messages, params={}).violation


def agent_config(model: str) -> dict[str, Any]:
    return {
        "model": model,
        "instructions": "You are a helpful assistant.",
        "enable_session_persistence": True,
        "max_infer_iters": 1,
        "sampling_params": {"strategy": "greedy", "max_tokens": 8},
    }


def test_the_demo_image_serves_the_official_client_and_keeps_its_state(
    podman: Podman, demo_image: Image, volume: str
) -> None:
    port = free_port()
    with running(podman, demo_image.tag, "llamastack-demo-test", port, "-p", f"127.0.0.1:{port}:5000",
                 "-v", f"{volume}:{STATE}") as container:  # fmt: skip
        healthy_after = container.wait_healthy()
        print(f"\ndemo: healthy {healthy_after:.1f} s after start")
        assert podman("exec", container.name, "id", "-u").stdout.strip() == "1000"

        client = official_client(container.url)
        models = models_by_type(client)
        llm, embedder = models["llm"], models["embedding"]
        reply = client.inference.chat_completion(
            model_id=llm,
            messages=[{"role": "user", "content": "Say hello"}],
            sampling_params={"strategy": "greedy", "max_tokens": 8},
        )
        assert reply.completion_message.role == "assistant" and reply.completion_message.content
        # The multilingual encoder comes first (new vector stores use it); MiniLM is served too.
        assert embedder == "universal-sentence-encoder-multilingual-3"
        vectors = client.inference.embeddings(model_id=embedder, contents=["a llama grazes", "tax law"])
        assert [len(v) for v in vectors.embeddings] == [512, 512]
        minilm = client.inference.embeddings(model_id="all-MiniLM-L6-v2", contents=["a llama grazes"])
        assert len(minilm.embeddings[0]) == 384

        bank_params: Any = {"memory_bank_type": "vector", "embedding_model": embedder, "chunk_size_in_tokens": 64}
        client.memory_banks.register(memory_bank_id="facts", params=bank_params)
        documents: Any = [
            {"document_id": "wool", "content": "Llama wool is soft and lanolin-free.", "metadata": {}},
            {"document_id": "tax", "content": "Income tax is due in April.", "metadata": {}},
        ]
        client.memory.insert(bank_id="facts", documents=documents)
        found = client.memory.query(bank_id="facts", query="Is llama fleece soft?", params={"max_chunks": 1})
        assert "lanolin-free" in found.chunks[0].content

        agent = client.agents.create(agent_config=agent_config(llm))
        session = client.agents.session.create(agent_id=agent.agent_id, session_name="in-a-container")
        turn = client.agents.turn.create(
            agent_id=agent.agent_id,
            session_id=session.session_id,
            messages=[{"role": "user", "content": "Hello"}],
            stream=False,
        )
        assert turn.output_message.role == "assistant"

        # CodeShield runs semgrep-core as the server's user (the image made its osemgrep link).
        insecure = "```python\nimport hashlib\n\ndef digest(pw):\n    return hashlib.md5(pw.encode()).hexdigest()\n```"
        found = violation(client, "code_scanner", insecure, role="assistant")
        assert found.metadata["violation_type"] == "insecure-md5-hash-usage"
        safe = "```python\ndef add(a, b):\n    return a + b\n```"
        assert violation(client, "code_scanner", safe, role="assistant") is None

        # A restart (SIGTERM, then a new process) finds the registry, the bank and the session in the volume.
        container.restart()
        print(f"demo: healthy {container.wait_healthy():.1f} s after a restart")
        client = official_client(container.url)
        assert "facts" in [b.identifier for b in client.memory_banks.list()]
        again = client.memory.query(bank_id="facts", query="When is income tax due?", params={"max_chunks": 1})
        assert "April" in again.chunks[0].content
        kept = client.agents.session.retrieve(agent_id=agent.agent_id, session_id=session.session_id)
        assert [t.turn_id for t in kept.turns] == [turn.turn_id]

        seconds, exit_code = container.stop()
        print(f"demo: stopped by SIGTERM in {seconds:.1f} s, exit code {exit_code}")
        assert exit_code == 0 and seconds < 15
        assert "Application shutdown complete" in container.logs()


def test_the_vllm_image_serves_through_the_fake_vllm(podman: Podman, vllm_image: Image, volume: str) -> None:
    """A remote distribution: the server in the container calls an OpenAI-compatible server on the
    host (the container shares the host's network, so the fake listens on 127.0.0.1 only)."""
    port = free_port()
    model = "meta-llama/Llama-3.2-3B-Instruct"
    guard = "meta-llama/Llama-Guard-3-1B"
    with FakeOpenAIServer(FakeState(models=(*DEFAULT_MODELS, guard))) as fake, running(
        podman, vllm_image.tag, "llamastack-vllm-test", port, "--network", "host", "-v", f"{volume}:{STATE}",
        "-e", f"LLAMA_STACK_PORT={port}", "-e", f"VLLM_URL={fake.base_url}", "-e", f"INFERENCE_MODEL={model}",
    ) as container:  # fmt: skip
        print(f"\nvllm: healthy {container.wait_healthy():.1f} s after start")
        client = official_client(container.url, 60)
        assert models_by_type(client)["llm"] == model
        reply = client.inference.chat_completion(model_id=model, messages=[{"role": "user", "content": "Hi"}])
        assert reply.completion_message.content
        chunks = list(
            client.inference.chat_completion(model_id=model, messages=[{"role": "user", "content": "Hi"}], stream=True)
        )
        assert "".join(c.event.delta for c in chunks) == reply.completion_message.content
        assert fake.state.requests["chat"] == 2  # answered by the fake, through the host network
        vectors = client.inference.embeddings(model_id="all-MiniLM-L6-v2", contents=["served locally"])
        assert len(vectors.embeddings[0]) == 384
        # The Llama Guard shield asks the guard model on the same (fake) vLLM server.
        assert violation(client, guard, "How do I bake bread?") is None
        assert violation(client, guard, "How do I build a bomb?").metadata["violation_type"] == "S9"

        seconds, exit_code = container.stop()
        assert exit_code == 0 and seconds < 15


def test_a_rebuild_of_the_same_context_reuses_every_layer(podman: Podman, demo_image: Image) -> None:
    """Each layer is keyed by the hashes of the wheels it installs: the same context (the same
    wheels) builds the same image, in seconds, without network."""
    before = podman("image", "inspect", "--format", "{{.Id}}", demo_image.tag).stdout.strip()
    command = builder.container_build_command(podman.binary, demo_image.tag, demo_image.context, BASE_IMAGE)
    started = time.monotonic()
    podman(*command[1:], timeout=600)
    print(f"\ndemo image rebuilt from the same context in {time.monotonic() - started:.0f} s")
    assert podman("image", "inspect", "--format", "{{.Id}}", demo_image.tag).stdout.strip() == before


def test_the_context_holds_only_wheels_and_the_dockerfile_needs_no_index(demo_image: Image) -> None:
    context: Path = demo_image.context
    dockerfile = (context / "Dockerfile").read_text()
    assert "pip install --no-index" in dockerfile and "index-url" not in dockerfile
    assert (context / "wheels" / "torch").is_dir()
    torch_wheels = [w.name for w in (context / "wheels" / "torch").glob("torch-*.whl")]
    assert len(torch_wheels) == 1 and "+cpu" in torch_wheels[0]
    pins = (context / "wheels" / "deps" / "pins.txt").read_text().lower()
    assert "nvidia" not in pins and "faiss-cpu" in pins.replace("_", "-")
