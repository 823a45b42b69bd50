"""SSRF, tried as a tenant would against a server with two API keys: document and image URLs
that point into the server's own network answer 400 naming the rule, and the target (a real
loopback server that counts hits) is never contacted. The allow-list lets an intranet source in.

The server allow-lists 127.0.0.1 (where the intranet document site listens); the "internal
service" listens on 127.0.0.2, which nothing allows."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from llama_stack_client import BadRequestError, LlamaStackClient

from tests.counting_server import CountingServer, Route, counting_server
from tests.fakes.ollama_model import llama_vision
from tests.fakes.ollama_server import FakeOllama, serve
from tests.live import LiveServer, live_server
from tests.providers.memory.harness import install_memory_providers

pytest.importorskip("ollama")
pytest.importorskip("faiss")

MODEL = "Llama3.2-11B-Vision-Instruct"
KEYS = {"alice": "sk-alice-0123456789abcdef", "bob": "sk-bob-0123456789abcdef00"}
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC")
HINT = "(allow it with server.outbound.allow)"


@pytest.fixture(scope="module")
def internal() -> Iterator[CountingServer]:
    """A service only the server's network should reach (think an admin API or cloud metadata)."""
    with counting_server("127.0.0.2") as service:
        service.routes["/admin"] = Route(b"internal admin secret")
        service.routes["/cat.png"] = Route(PNG, content_type="image/png")
        yield service


@pytest.fixture(scope="module")
def intranet() -> Iterator[CountingServer]:
    with counting_server("127.0.0.1") as site:
        site.routes["/handbook.txt"] = Route(b"The handbook says: badges are blue.")
        site.routes["/logo.png"] = Route(PNG, content_type="image/png")
        yield site


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    install_memory_providers()
    state: Path = tmp_path_factory.mktemp("security-outbound")
    with serve(FakeOllama(installed=[llama_vision("llama3.2-vision:11b")])) as ollama_url:
        config: dict[str, Any] = {
            "version": 2,
            "image_name": "security-outbound",
            "providers": {
                "inference": [
                    {"provider_id": "ollama", "provider_type": "remote::ollama", "config": {"url": ollama_url}}
                ],
                "memory": [
                    {
                        "provider_id": "faiss",
                        "provider_type": "inline::faiss",
                        "config": {
                            "persist_dir": str(state / "faiss"),
                            "kvstore": {"type": "sqlite", "db_path": str(state / "kv.db")},
                        },
                    }
                ],
            },
            "metadata_store": {"type": "sqlite", "db_path": str(state / "registry.db")},
            "models": [{"model_id": MODEL, "provider_id": "ollama"}],
            "server": {
                "auth": {"keys": [{"name": name, "key": key} for name, key in KEYS.items()]},
                "outbound": {"allow": ["127.0.0.1"]},
            },
        }
        with live_server(config) as live:
            yield live


def alpha(server: LiveServer, who: str) -> LlamaStackClient:
    return LlamaStackClient(
        base_url=server.base_url, default_headers={"Authorization": f"Bearer {KEYS[who]}"}, max_retries=0
    )


@pytest.fixture(scope="module")
def bank(server: LiveServer) -> str:
    alpha(server, "alice").memory_banks.register(memory_bank_id="alice-notes", params={"memory_bank_type": "keyvalue"})
    return "alice-notes"


def insert(client: LlamaStackClient, bank: str, document_id: str, content: Any) -> None:
    client.memory.insert(bank_id=bank, documents=[{"document_id": document_id, "content": content, "metadata": {}}])


def test_a_document_url_into_the_servers_network_is_refused_and_never_fetched(
    server: LiveServer, bank: str, internal: CountingServer
) -> None:
    alice = alpha(server, "alice")
    url = f"{internal.url}/admin"
    for content in (url, {"uri": url}):
        with pytest.raises(BadRequestError) as refused:
            insert(alice, bank, "stolen", content)
        assert refused.value.status_code == 400
        assert f"URL {url} is refused: 127.0.0.2 is a loopback address {HINT}" in str(refused.value)
    with pytest.raises(BadRequestError, match=re.escape("169.254.169.254 is a link-local address")):
        insert(alice, bank, "metadata", "http://169.254.169.254/latest/meta-data/iam/security-credentials/")
    assert internal.hits == []
    assert alice.memory.query(bank_id=bank, query="stolen").chunks == []


def test_a_redirect_from_an_allowed_site_into_the_network_is_refused(
    server: LiveServer, bank: str, intranet: CountingServer, internal: CountingServer
) -> None:
    intranet.routes["/moved"] = Route(status=302, location=f"{internal.url}/admin")
    with pytest.raises(
        BadRequestError, match=re.escape(f"URL {internal.url}/admin is refused: 127.0.0.2 is a loopback")
    ):
        insert(alpha(server, "alice"), bank, "hop", f"{intranet.url}/moved")
    assert "/moved" in intranet.paths() and internal.hits == []


def test_an_allow_listed_intranet_source_is_fetched(server: LiveServer, bank: str, intranet: CountingServer) -> None:
    alice = alpha(server, "alice")
    insert(alice, bank, "handbook", f"{intranet.url}/handbook.txt")
    chunks = alice.memory.query(bank_id=bank, query="handbook").chunks
    assert [str(c.content) for c in chunks] == ["The handbook says: badges are blue."]
    assert intranet.paths().count("/handbook.txt") == 1


def test_image_urls_into_the_servers_network_are_refused_on_both_faces(
    server: LiveServer, internal: CountingServer
) -> None:
    url = f"{internal.url}/cat.png"
    expected = f"URL {url} is refused: 127.0.0.2 is a loopback address {HINT}"
    bob = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key=KEYS["bob"], max_retries=0)
    message: Any = {
        "role": "user",
        "content": [{"type": "text", "text": "What is it?"}, {"type": "image_url", "image_url": {"url": url}}],
    }
    for stream in (False, True):
        with pytest.raises(openai.BadRequestError) as refused:
            bob.chat.completions.create(model=MODEL, messages=[message], stream=stream)
        assert expected in str(refused.value)
    content: Any = [{"type": "image", "url": {"uri": url}}, {"type": "text", "text": "Describe it."}]
    with pytest.raises(BadRequestError) as refused_alpha:
        alpha(server, "bob").inference.chat_completion(model_id=MODEL, messages=[{"role": "user", "content": content}])
    assert refused_alpha.value.status_code == 400 and expected in str(refused_alpha.value)
    assert internal.hits == []


def test_an_allow_listed_image_is_fetched_once_and_reaches_the_model(
    server: LiveServer, intranet: CountingServer
) -> None:
    bob = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key=KEYS["bob"], max_retries=0)
    image: Any = {"type": "image_url", "image_url": {"url": f"{intranet.url}/logo.png"}}
    response = bob.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": [image]}])
    assert "I see 1 image" in (response.choices[0].message.content or "")
    assert intranet.paths().count("/logo.png") == 1
