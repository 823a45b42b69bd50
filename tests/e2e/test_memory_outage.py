"""remote::pgvector while its Postgres is down: a live server answers every memory call with a clear
503 within 2 s (never the pool's 30 s wait), and answers again by itself once Postgres is back.
The Postgres is a private pgserver instance, stopped and restarted mid-test; the embedder is the
fake Ollama (no torch in the test)."""

from __future__ import annotations

import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.ollama_model import embedder
from tests.fakes.ollama_server import FakeOllama, serve
from tests.live import LiveServer, live_server

pytest.importorskip("ollama")
pytest.importorskip("pgvector")

EMBED = "all-minilm:l6-v2"
QUERY = {"bank_id": "facts", "query": "lantern festival", "params": {"max_chunks": 3}}
DOCUMENT = {"document_id": "river", "content": "Paper lanterns float on the river at the festival.", "metadata": {}}


class Postgres:
    """A pgserver Postgres of this test's own, which the test may stop and start again."""

    def __init__(self) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from pgserver.postgres_server import get_server
        self.pgdata = Path(tempfile.mkdtemp(prefix="llamastack-outage-pg-"))
        self.server = get_server(self.pgdata, cleanup_mode="delete")
        self.dsn: str = self.server.get_uri()

    def stop(self) -> None:
        from pgserver._commands import pg_ctl

        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.pgdata, user=self.server.system_user)

    def start(self) -> None:
        self.server.ensure_postgres_running()

    def remove(self) -> None:
        self.server.cleanup()
        shutil.rmtree(self.pgdata, ignore_errors=True)


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    instance = Postgres()
    try:
        yield instance
    finally:
        instance.remove()


@pytest.fixture(scope="module")
def server(postgres: Postgres, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    state = tmp_path_factory.mktemp("outage")
    config: dict[str, Any] = {
        "version": 2,
        "image_name": "outage",
        "providers": {
            "inference": [{"provider_id": "ollama", "provider_type": "remote::ollama", "config": {"url": ""}}],
            "memory": [
                {
                    "provider_id": "pgvector",
                    "provider_type": "remote::pgvector",
                    "config": {"dsn": postgres.dsn, "table_prefix": "outage"},
                }
            ],
        },
        # The registry stays up: the outage is the memory provider's own database.
        "metadata_store": {"type": "sqlite", "db_path": str(state / "registry.db")},
        "models": [
            {
                "model_id": EMBED,
                "model_type": "embedding",
                "provider_id": "ollama",
                "metadata": {"embedding_dimension": 384},
            }
        ],
    }
    with serve(FakeOllama(installed=[embedder(EMBED, 384)])) as ollama_url:
        config["providers"]["inference"][0]["config"]["url"] = ollama_url
        with live_server(config) as live:
            yield live


def timed(session: httpx.Client, path: str, body: dict[str, Any]) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = session.post(path, json=body)
    return response, time.monotonic() - started


def test_a_postgres_outage_is_a_503_within_two_seconds_and_heals_by_itself(
    server: LiveServer, postgres: Postgres
) -> None:
    vector = {"memory_bank_type": "vector", "embedding_model": EMBED, "chunk_size_in_tokens": 64}
    with httpx.Client(base_url=server.base_url, timeout=60) as session:
        for bank_id, params in (("facts", vector), ("words", {"memory_bank_type": "keyword"})):
            registered = session.post(
                "/alpha/memory-banks/register", json={"memory_bank_id": bank_id, "params": params}
            )
            assert registered.status_code == 200, registered.text
            inserted = session.post("/alpha/memory/insert", json={"bank_id": bank_id, "documents": [DOCUMENT]})
            assert inserted.status_code == 200, inserted.text
        assert session.post("/alpha/memory/query", json=QUERY).json()["chunks"][0]["document_id"] == "river"

        postgres.stop()
        try:
            calls: list[tuple[str, dict[str, Any]]] = [
                ("/alpha/memory/query", QUERY),  # the pool's idle connection finds the server gone
                ("/alpha/memory/query", QUERY),  # now the pool has no connection to give
                ("/alpha/memory/query", {**QUERY, "params": {"mode": "hybrid"}}),
                ("/alpha/memory/insert", {"bank_id": "facts", "documents": [DOCUMENT]}),
                ("/alpha/memory/query", {**QUERY, "bank_id": "words"}),
                ("/alpha/memory/insert", {"bank_id": "words", "documents": [DOCUMENT]}),
            ]
            for path, body in calls:
                response, seconds = timed(session, path, body)
                assert response.status_code == 503, (path, body, response.text)
                assert seconds < 2.0, (path, body, seconds)
                error = response.json()["error"]
                assert error["type"] == "unavailable" and "retry later" in error["message"]
                assert response.headers["x-should-retry"] == "true"
                assert response.headers["retry-after"] == "1"  # the official client waits this long
        finally:
            postgres.start()

        deadline = time.monotonic() + 30
        while True:
            response = session.post("/alpha/memory/query", json=QUERY)
            if response.status_code == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.25)
        assert response.status_code == 200, response.text
        assert response.json()["chunks"][0]["document_id"] == "river"
        words = session.post("/alpha/memory/query", json={**QUERY, "bank_id": "words"})
        assert words.status_code == 200 and words.json()["chunks"][0]["document_id"] == "river"
