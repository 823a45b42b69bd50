"""After each fault the server answers, nothing it acknowledged is lost, and every client got a
clear error: a status the fault explains and a message in its face's envelope, or an error frame
in a stream that had begun (tests/system/fault_clients.py says what "clear" means).

One stack server in its own process, with every piece that can fail outside it: remote::vllm in
front of the fake OpenAI backend (timeout 3 s, no retries); the registry and the agents' sessions
in Redis (fsync-always append-only file); pgvector on Postgres and FAISS for memory; the
meta-reference agents. The tests run in file order over that one set of processes; each leaves
the processes running.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.system.fault_clients import (
    MODEL,
    AgentTurns,
    MemoryWriters,
    Outcome,
    call_chat,
    post_json,
    server_answers,
    turns_concurrently,
)
from tests.system.processes import FakeBackend, PostgresServer, RedisServer, StackServer

pytestmark = pytest.mark.system

EMBEDDER = "nomic-ai/nomic-embed-text-v1.5"
KILL_AFTER_INSERTS = 20  # acknowledged FAISS inserts before the SIGKILL
KILL_AFTER_TURNS = 6  # acknowledged agent turns before the SIGKILL
# A session's turn holds a lease; a server killed mid-turn leaves it held until it expires (within
# twice this), and a turn sent meanwhile answers 409. Short, so that the sessions go on soon.
SESSION_LEASE_S = 2.0


def run_config(state: Path, backend_url: str, redis_url: str, postgres_uri: str) -> dict[str, Any]:
    vllm = {"url": backend_url, "max_retries": 0, "timeout_s": 3}
    pgvector = {"dsn": postgres_uri, "hnsw": False, "pool_max_size": 4}
    agents = {
        "persistence_store": {"type": "redis", "url": redis_url, "namespace": "agents"},
        "session_lease_s": SESSION_LEASE_S,
    }
    return {
        "version": 2,
        "image_name": "system-faults",
        "providers": {
            "inference": [{"provider_id": "vllm", "provider_type": "remote::vllm", "config": vllm}],
            "memory": [
                {"provider_id": "faiss", "provider_type": "inline::faiss", "config": {"persist_dir": f"{state}/faiss"}},
                {"provider_id": "pgvector", "provider_type": "remote::pgvector", "config": pgvector},
            ],
            "agents": [{"provider_id": "agents", "provider_type": "inline::meta-reference", "config": agents}],
        },
        "metadata_store": {"type": "redis", "url": redis_url, "namespace": "registry"},
        "models": [
            {"model_id": MODEL, "provider_id": "vllm", "provider_model_id": MODEL},
            {
                "model_id": EMBEDDER,
                "provider_id": "vllm",
                "provider_model_id": EMBEDDER,
                "model_type": "embedding",
                "metadata": {"embedding_dimension": 16},
            },
        ],
    }


@dataclass
class Processes:
    backend: FakeBackend
    redis: RedisServer
    postgres: PostgresServer
    server: StackServer

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture(scope="module")
def processes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Processes]:
    scratch = tmp_path_factory.mktemp("faults")
    backend, redis = FakeBackend(scratch), RedisServer(scratch)
    postgres: PostgresServer | None = None
    server: StackServer | None = None
    try:
        backend.start()
        redis.start()
        postgres = PostgresServer()
        server = StackServer(run_config(scratch, backend.base_url, redis.url, postgres.uri), scratch).start()
        yield Processes(backend, redis, postgres, server)
    finally:
        for stop in (server and server.stop, postgres and postgres.close, redis.stop, backend.stop):
            if stop:
                stop()


def unclear(outcomes: list[Outcome]) -> list[str]:
    return [f"{o.summary()} after {o.seconds:.2f}s" for o in outcomes if not o.clear]


# --- the backend ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "status"),
    [("500", 502), ("garbage", 502), ("die", 502), ("hang", 504)],
    ids=["answers-500", "answers-garbage", "dies-mid-answer", "hangs-past-the-timeout"],
)
def test_a_failing_backend_gives_each_call_a_clear_error(processes: Processes, mode: str, status: int) -> None:
    calls = [("v1", False), ("v1", True), ("alpha", False), ("alpha", True)]
    if mode == "hang":  # each call waits out the 3 s timeout: one per face
        calls = [("v1", False), ("alpha", True)]
    outcomes = []
    for face, stream in calls:
        processes.backend.fault(mode)
        outcomes.append(call_chat(processes.url, face, stream, (status,), timeout_s=30))
    assert unclear(outcomes) == []
    assert server_answers(processes.url)


def test_a_killed_backend_gives_clear_errors_until_it_is_back(processes: Processes) -> None:
    processes.backend.sigkill()
    outcomes = [call_chat(processes.url, face, stream, (502,)) for face in ("v1", "alpha") for stream in (False, True)]
    processes.backend.start()
    assert unclear(outcomes) == []
    assert server_answers(processes.url)


# --- Redis: the registry and the agents' sessions ----------------------------------------------


def register_model(url: str, name: str) -> Outcome:
    body = {"model_id": name, "provider_id": "vllm", "provider_model_id": MODEL}
    return post_json(url, "/alpha/models/register", body, (200,), failure_expected=(500, 502, 503))


def model_ids(url: str) -> set[str]:
    return {m["identifier"] for m in httpx.get(f"{url}/alpha/models/list", timeout=30).json()}


def test_redis_killed_and_restarted_loses_nothing_acknowledged(processes: Processes) -> None:
    agents = AgentTurns(processes.url)
    agents.start_session()
    before = [f"before-redis-{i}" for i in range(3)]
    assert all(register_model(processes.url, name).status == 200 for name in before)
    assert agents.turns(2, stream=False) == []

    processes.redis.sigkill()
    during = [register_model(processes.url, "during-redis-outage"), agents.turn_outcome(stream=False)]
    chat = call_chat(processes.url, "v1", False, (200,))  # a cached registry still serves inference
    processes.redis.start()

    assert unclear(during) == []
    assert chat.status == 200, chat.summary()
    assert register_model(processes.url, "after-redis-restart").status == 200
    assert agents.turns(1, stream=True) == []  # the session goes on
    assert {*before, "after-redis-restart"} <= model_ids(processes.url)
    assert agents.lost_turns() == []
    assert server_answers(processes.url)


# --- Postgres: the pgvector bank ------------------------------------------------------------------


def test_postgres_crash_and_restart_loses_no_acknowledged_document(processes: Processes) -> None:
    memory = MemoryWriters(processes.url, "pgvector", "pg-bank", EMBEDDER)
    memory.register()
    assert memory.insert_serially(10, prefix="before") == []
    processes.postgres.crash()
    during = [memory.insert_outcome("during-outage"), memory.query_outcome("during the outage")]
    processes.postgres.start()
    # The pool heals by itself: until it has, calls answer a retryable 503 (a clear error).
    healing = [memory.insert_outcome("healing-0")]
    deadline = time.monotonic() + 30
    while healing[-1].status != 200 and time.monotonic() < deadline:
        time.sleep(0.25)
        healing.append(memory.insert_outcome(f"healing-{len(healing)}"))
    assert unclear(during) == []
    assert healing[-1].status == 200 and unclear(healing) == [], [o.summary() for o in healing]
    assert memory.insert_serially(5, prefix="after") == []
    assert memory.lost() == []
    assert server_answers(processes.url)


# --- SIGKILL of the stack server -------------------------------------------------------------------


def test_a_server_killed_during_faiss_inserts_keeps_every_acknowledged_one(processes: Processes) -> None:
    memory = MemoryWriters(processes.url, "faiss", "faiss-bank", EMBEDDER)
    memory.register()
    outcomes = memory.insert_concurrently(writers=4, kill_after=KILL_AFTER_INSERTS, kill=processes.server.sigkill)
    processes.server.restart_after_kill()
    assert len(memory.acknowledged) >= KILL_AFTER_INSERTS
    assert unclear(outcomes) == []  # each writer's last call was cut mid-way or refused
    assert memory.lost() == []
    assert server_answers(processes.url)


def test_a_server_killed_during_agent_turns_keeps_every_acknowledged_one(processes: Processes) -> None:
    sessions = [AgentTurns(processes.url) for _ in range(4)]
    for session in sessions:
        session.start_session()
    outcomes = turns_concurrently(sessions, kill_after=KILL_AFTER_TURNS, kill=processes.server.sigkill)
    processes.server.restart_after_kill()
    assert sum(len(session.acknowledged) for session in sessions) >= KILL_AFTER_TURNS
    assert unclear(outcomes) == []
    assert [session.lost_turns() for session in sessions] == [[]] * len(sessions)
    assert [next_turn_once_the_lease_expired(session) for session in sessions] == [[]] * len(sessions)
    assert server_answers(processes.url)


def next_turn_once_the_lease_expired(session: AgentTurns) -> list[Outcome]:
    """A turn of a session whose turn may have died with the server: it answers 409 until the
    dead turn's lease expires, then the session goes on. The failures of the last try."""
    deadline = time.monotonic() + 3 * SESSION_LEASE_S
    while True:
        failed = session.turns(1, stream=True)
        if not failed or failed[0].status != 409 or time.monotonic() > deadline:
            return failed
        time.sleep(0.25)


def test_no_fault_made_the_server_log_a_traceback(processes: Processes) -> None:
    assert processes.server.tracebacks() == []
