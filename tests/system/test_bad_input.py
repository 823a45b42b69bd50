"""Bad input never makes the server fail (5xx) or answer outside its declared schema and its
face's error envelope: schemathesis over both faces (tests/system/schema_fuzz.py), then each
hand-written nasty input with the status it must get (tests/system/nasty_inputs.py).

One stack server in its own process serves every API with scripted providers: the "echo" chat
model, a scripted Llama Guard behind the real llama_guard shield, FAISS memory over scripted
embeddings, the meta-reference agents. Its outbound HTTP goes to a closed local port.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.system.nasty_inputs import Nasty, envelope_problem, message_of, nasty_inputs, send
from tests.system.processes import StackServer

pytestmark = pytest.mark.system

# schemathesis cases per operation and mode. Generating them costs far more than sending them
# (hypothesis draws and filters tens of candidates per case), so the tier keeps it small; a
# thorough run: LLAMA_STACK_FUZZ_EXAMPLES=60 pytest tests/system/test_bad_input.py (minutes).
EXAMPLES = int(os.environ.get("LLAMA_STACK_FUZZ_EXAMPLES", "2"))
SEED = 1
# Access control is on, as on a shared server: the fuzzer and the nasty inputs send a valid key,
# so every case reaches the routes; a request without one is refused before any of them.
API_KEY = "system-fuzz-key-0123456789"
AUTH = {"authorization": f"Bearer {API_KEY}"}


def run_config(state: Path) -> dict[str, Any]:
    faiss = {"persist_dir": str(state / "faiss"), "ingestion": {"fetch_timeout_s": 5}}
    agents = {"persistence_store": {"type": "sqlite", "db_path": str(state / "agents.db")}}
    bank = {"memory_bank_type": "vector", "embedding_model": "embedder", "chunk_size_in_tokens": 64}
    return {
        "version": 2,
        "image_name": "system-bad-input",
        "providers": {
            "inference": [
                {"provider_id": "scripted", "provider_type": "test::scripted", "config": {}},
                {"provider_id": "guard", "provider_type": "test::scripted-llama-guard", "config": {}},
            ],
            "safety": [{"provider_id": "llama-guard", "provider_type": "inline::llama-guard", "config": {}}],
            "memory": [{"provider_id": "faiss", "provider_type": "inline::faiss", "config": faiss}],
            "agents": [{"provider_id": "agents", "provider_type": "inline::meta-reference", "config": agents}],
        },
        "metadata_store": {"type": "sqlite", "db_path": str(state / "registry.db")},
        "models": [
            {"model_id": "echo", "provider_id": "scripted"},
            {
                "model_id": "embedder",
                "provider_id": "scripted",
                "model_type": "embedding",
                "metadata": {"embedding_dimension": 2},
            },
            {"model_id": "Llama-Guard-3-1B", "provider_id": "guard"},
            {"model_id": "Llama-Guard-3-11B-Vision", "provider_id": "guard"},
        ],
        "shields": [{"shield_id": "llama_guard", "provider_id": "llama-guard"}],
        "memory_banks": [{"memory_bank_id": "notes", "params": bank}],
        "server": {"auth": {"keys": [{"name": "fuzzer", "key": API_KEY}]}},
    }


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackServer]:
    scratch = tmp_path_factory.mktemp("bad-input")
    stack = StackServer(run_config(scratch), scratch)
    try:
        yield stack.start()
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def fuzzed(server: StackServer) -> Any:
    pytest.importorskip("schemathesis", reason="pip install -e '.[dev]' (schemathesis drives this test)")
    from tests.system.schema_fuzz import Fuzzer

    fuzzer = Fuzzer(server.url, EXAMPLES, SEED, AUTH)
    fuzzer.run()
    return fuzzer


def test_schemathesis_covers_both_faces(fuzzed: Any) -> None:
    faces = {route.split(" ", 1)[1].split("/")[1] for route in fuzzed.tallies}
    assert {"alpha", "v1"} <= faces
    assert sum(t.cases for t in fuzzed.tallies.values()) >= len(fuzzed.tallies)


def test_schemathesis_finds_no_5xx_no_schema_violation_no_stray_error_envelope(fuzzed: Any) -> None:
    from tests.system.schema_fuzz import failure_report

    assert fuzzed.failures == [], failure_report(fuzzed.failures)


@pytest.mark.parametrize("case", nasty_inputs(), ids=lambda case: case.name)
def test_a_nasty_input_gets_its_status_in_its_face_envelope(server: StackServer, case: Nasty) -> None:
    status, body = send(server.url, case, AUTH)
    assert status in case.expected, message_of(body)
    assert isinstance(status, int) and envelope_problem(case.path, status, body) is None


def test_without_a_key_every_face_answers_401_in_its_envelope(server: StackServer) -> None:
    for path, body in (("/v1/chat/completions", {"model": "echo"}), ("/alpha/inference/chat-completion", {})):
        refused = httpx.post(f"{server.url}{path}", json=body, timeout=30)
        assert refused.status_code == 401, path
        assert envelope_problem(path, 401, refused.content) is None


def test_the_server_still_answers_and_logged_no_traceback(server: StackServer) -> None:
    assert server.alive() and httpx.get(f"{server.url}/alpha/health", timeout=10).is_success
    assert server.tracebacks() == []
