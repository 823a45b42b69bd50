"""Proof: after each fault the server answers, nothing it acknowledged is lost, and the client got
a clear error (a status and a message in its face's envelope, or an error frame in a stream).

One stack server (its own process), with every piece that can fail outside it:
  * inference: remote::vllm in front of the fake OpenAI backend (tests/fakes/openai_server.py),
    timeout 3 s, no retries;
  * registry (metadata_store) and agents' sessions: Redis, with an fsync-always append-only file;
  * memory: pgvector on Postgres 16 (pgserver), and FAISS (its append-only log on disk);
  * agents: inline::meta-reference.
Faults, one after the other: the backend answers 500, answers garbage, dies mid-stream, hangs,
is killed (and restarted); Redis is killed and restarted; Postgres crashes (pg_ctl -m immediate)
and restarts; the stack server is SIGKILLed during FAISS inserts, and during agent turns, and
restarted on the same state. Prints a table: fault, what clients got, whether the server
answers afterwards, acknowledged items lost.

    python -m scripts.prove_faults [--short] [--keep]

Exit status 0 when the proof holds, 1 when it does not.
"""

from __future__ import annotations

import argparse
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from scripts.prove_common import (
    FakeBackend,
    PostgresServer,
    RedisServer,
    StackServer,
    Verdict,
    print_tracebacks,
    scratch_dir,
    table,
)
from scripts.prove_faults_clients import (
    MODEL,
    AgentTurns,
    MemoryWriters,
    Outcome,
    call_chat,
    post_json,
    server_answers,
)

EMBEDDER = "nomic-ai/nomic-embed-text-v1.5"


def run_config(state: Path, backend_url: str, redis_url: str, postgres_uri: str) -> dict[str, Any]:
    return {
        "version": 2,
        "image_name": "prove-faults",
        "providers": {
            "inference": [
                {
                    "provider_id": "vllm",
                    "provider_type": "remote::vllm",
                    "config": {"url": backend_url, "max_retries": 0, "timeout_s": 3},
                }
            ],
            "memory": [
                {
                    "provider_id": "faiss",
                    "provider_type": "inline::faiss",
                    "config": {"persist_dir": str(state / "faiss")},
                },
                {
                    "provider_id": "pgvector",
                    "provider_type": "remote::pgvector",
                    "config": {"dsn": postgres_uri, "hnsw": False, "pool_max_size": 4},
                },
            ],
            "agents": [
                {
                    "provider_id": "agents",
                    "provider_type": "inline::meta-reference",
                    "config": {"persistence_store": {"type": "redis", "url": redis_url, "namespace": "agents"}},
                }
            ],
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
class Row:
    fault: str
    clients_got: list[Outcome] = field(default_factory=list)
    answers_after: bool = False
    acknowledged: int = 0
    lost: int = 0
    notes: str = ""

    @property
    def clear(self) -> bool:
        return all(outcome.clear for outcome in self.clients_got)

    def call_rows(self) -> list[list[Any]]:
        return [
            [
                self.fault,
                o.label,
                o.status,
                f"{o.seconds:.2f}",
                "ok" if o.clear else "FAIL",
                " ".join(o.message.split())[:110],
            ]
            for o in self.clients_got
        ]

    def cells(self) -> list[Any]:
        lost = f"{self.lost}/{self.acknowledged}" if self.acknowledged else "-"
        return [
            self.fault,
            len(self.clients_got),
            "yes" if self.clear else "NO",
            "yes" if self.answers_after else "NO",
            lost,
            "ok" if self.ok else "FAIL",
        ]

    @property
    def ok(self) -> bool:
        return self.clear and self.answers_after and self.lost == 0


def cut_short(outcomes: list[Outcome]) -> str:
    cut = sum(1 for o in outcomes if o.status != "ConnectError")
    return f"{cut} call(s) cut mid-way by the kill, {len(outcomes) - cut} refused while it was down"


class Faults:
    """The fault scenarios, over one set of processes."""

    def __init__(self, scratch: Path, short: bool) -> None:
        self.scratch = scratch
        self.short = short
        self._stops: list[Callable[[], object]] = []  # what close() stops, last started first
        try:
            self.backend = FakeBackend(scratch).start()
            self._stops.append(self.backend.stop)
            self.redis = RedisServer(scratch).start()
            self._stops.append(self.redis.stop)
            self.postgres = PostgresServer()
            self._stops.append(self.postgres.close)
            config = run_config(scratch, self.backend.base_url, self.redis.url, self.postgres.uri)
            self.server = StackServer(config, scratch).start()
            self._stops.append(self.server.stop)
        except BaseException:
            self.close()
            raise
        self.rows: list[Row] = []
        self.tracebacks: list[str] = []

    def close(self) -> None:
        while self._stops:
            self._stops.pop()()

    def answers(self) -> bool:
        return server_answers(self.server.url)

    # --- the backend ---------------------------------------------------------------------------

    def backend_fault(self, name: str, mode: str, status: int, slow: bool = False) -> None:
        """Each call must fail with `status`, or, for a stream that had begun, with an error frame."""
        row = Row(f"backend {name}")
        calls = [("v1", False), ("v1", True), ("alpha", False), ("alpha", True)]
        if slow and self.short:
            calls = [("v1", False), ("alpha", True)]
        for face, stream in calls:
            self.backend.fault(mode)
            row.clients_got.append(call_chat(self.server.url, face, stream, (status,), timeout_s=30))
        row.answers_after = self.answers()
        self.rows.append(row)

    def backend_killed(self) -> None:
        row = Row("backend killed, then restarted")
        self.backend.kill(signal.SIGKILL)
        for face in ("v1", "alpha"):
            row.clients_got.append(call_chat(self.server.url, face, False, (502,)))
            row.clients_got.append(call_chat(self.server.url, face, True, (502,)))
        self.backend.start()
        row.answers_after = self.answers()
        self.rows.append(row)

    # --- Redis: the registry and the agents' sessions ------------------------------------------

    def redis_restart(self) -> None:
        row = Row("Redis killed (SIGKILL), then restarted")
        agents = AgentTurns(self.server.url)
        agents.start_session()
        acknowledged = [self._register_model(f"before-redis-{i}") for i in range(3)]
        failed = agents.turns(2, stream=False)
        self.redis.kill(signal.SIGKILL)
        row.clients_got.append(self._register_model_outcome("during-redis-outage"))
        row.clients_got.append(agents.turn_outcome(stream=False))
        chat = call_chat(self.server.url, "v1", False, (200,))  # a cached registry serves inference
        chat.label = "/v1 (a registered model)"
        row.clients_got.append(chat)
        self.redis.start()
        after = self._register_model_outcome("after-redis-restart")
        failed += agents.turns(1, stream=True)
        if after.status == 200:
            acknowledged.append("after-redis-restart")
        else:
            failed.append(after)
        registered = self._model_ids()
        lost = [m for m in acknowledged if m is not None and m not in registered] + agents.lost_turns()
        row.acknowledged = len([m for m in acknowledged if m]) + len(agents.acknowledged)
        row.lost = len(lost)
        row.answers_after = self.answers() and chat.status == 200 and not failed
        row.notes = "; ".join(
            [f"failed after the restart: {o.summary()}" for o in failed] + ([f"lost {lost}"] if lost else [])
        )
        self.rows.append(row)

    def _register_model(self, name: str) -> str | None:
        outcome = self._register_model_outcome(name)
        return name if outcome.status == 200 else None

    def _register_model_outcome(self, name: str) -> Outcome:
        body = {"model_id": name, "provider_id": "vllm", "provider_model_id": MODEL}
        return post_json(self.server.url, "/alpha/models/register", body, (200,), failure_expected=(500, 502, 503))

    def _model_ids(self) -> set[str]:
        return {m["identifier"] for m in httpx.get(f"{self.server.url}/alpha/models/list", timeout=30).json()}

    # --- Postgres: the pgvector bank ------------------------------------------------------------

    def postgres_restart(self) -> None:
        row = Row("Postgres crashed (immediate stop), then restarted")
        memory = MemoryWriters(self.server.url, "pgvector", "pg-bank", EMBEDDER)
        memory.register()
        failed = memory.insert_serially(10, prefix="before")
        self.postgres.crash()
        row.clients_got.append(memory.insert_outcome("during-outage"))
        if not self.short:  # it waits out the pool's timeout (30 s) before answering
            row.clients_got.append(memory.query_outcome("during the outage"))
        self.postgres.start()
        failed += memory.insert_serially(5, prefix="after")
        lost = memory.lost()
        row.acknowledged, row.lost = len(memory.acknowledged), len(lost)
        row.answers_after = self.answers() and not failed
        row.notes = "; ".join(
            [f"failed after the restart: {o.summary()}" for o in failed] + ([f"lost {lost}"] if lost else [])
        )
        self.rows.append(row)

    # --- SIGKILL of the stack server ------------------------------------------------------------

    def sigkill_during_inserts(self) -> None:
        row = Row("server SIGKILLed during FAISS inserts, restarted")
        memory = MemoryWriters(self.server.url, "faiss", "faiss-bank", EMBEDDER)
        memory.register()
        outcomes = memory.insert_concurrently(writers=4, kill_after=20 if self.short else 100, kill=self._kill)
        row.clients_got += outcomes
        self._restart()
        lost = memory.lost()
        row.acknowledged, row.lost = len(memory.acknowledged), len(lost)
        row.answers_after = self.answers()
        row.notes = "; ".join([cut_short(outcomes), *([f"lost {lost}"] if lost else [])])
        self.rows.append(row)

    def sigkill_during_turns(self) -> None:
        row = Row("server SIGKILLed during agent turns, restarted")
        agents = AgentTurns(self.server.url)
        agents.start_session()
        outcomes = agents.turns_concurrently(clients=4, kill_after=6 if self.short else 30, kill=self._kill)
        row.clients_got += outcomes
        self._restart()
        lost = agents.lost_turns()
        failed = agents.turns(1, stream=True)  # the session goes on after the restart
        row.acknowledged, row.lost = len(agents.acknowledged), len(lost)
        row.answers_after = self.answers() and not failed
        row.notes = "; ".join(
            [cut_short(outcomes)]
            + [f"failed after the restart: {o.summary()}" for o in failed]
            + ([f"lost {lost}"] if lost else [])
        )
        self.rows.append(row)

    def _kill(self) -> None:
        self.server.sigkill()

    def _restart(self) -> None:
        self.tracebacks += self.server.tracebacks()
        self.server.log_path.rename(self.server.log_path.with_suffix(f".{time.monotonic_ns()}.log"))
        self.server.start()

    def run(self, only: Callable[[str], bool]) -> None:
        scenarios: list[tuple[str, Callable[[], None]]] = [
            ("500", lambda: self.backend_fault("answers 500", "500", 502)),
            ("garbage", lambda: self.backend_fault("answers garbage", "garbage", 502)),
            ("die", lambda: self.backend_fault("dies mid-answer", "die", 502)),
            ("hang", lambda: self.backend_fault("hangs (timeout 3 s)", "hang", 504, slow=True)),
            ("backend-killed", self.backend_killed),
            ("redis", self.redis_restart),
            ("postgres", self.postgres_restart),
            ("kill-inserts", self.sigkill_during_inserts),
            ("kill-turns", self.sigkill_during_turns),
        ]
        for name, scenario in scenarios:
            if only(name):
                started = time.perf_counter()
                scenario()
                print(f"  {self.rows[-1].fault}: {time.perf_counter() - started:.1f}s", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--short",
        action="store_true",
        help="a quick run for the test tier: fewer acknowledged writes before each SIGKILL, two calls to the "
        "hanging backend, no query during the Postgres outage (it waits 30 s)",
    )
    parser.add_argument("--only", nargs="*", default=None, help="run only these scenarios (by their short name)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (logs, state)")
    args = parser.parse_args()
    verdict = Verdict()
    with scratch_dir("prove-faults-", keep=args.keep) as scratch:
        faults = Faults(scratch, args.short)
        try:
            faults.run(lambda name: args.only is None or name in args.only)
        finally:
            faults.tracebacks += faults.server.tracebacks()
            faults.close()
    print("\nwhat the clients got during each fault (status, seconds to the answer, message)")
    print(table(["fault", "call", "got", "s", "clear", "message"], [r for row in faults.rows for r in row.call_rows()]))
    print("\nafter each fault")
    print(
        table(
            ["fault", "calls", "all clear", "server answers", "acknowledged lost", ""],
            [row.cells() for row in faults.rows],
        )
    )
    for row in faults.rows:
        if row.notes:
            print(f"  {row.fault}: {row.notes}")
        verdict.check(f"{row.fault}: clear errors", row.clear)
        verdict.check(f"{row.fault}: the server answers afterwards", row.answers_after)
        verdict.check(f"{row.fault}: nothing acknowledged lost", row.lost == 0, f"{row.lost}/{row.acknowledged}")
    print_tracebacks(faults.tracebacks)
    verdict.check("the server logged no traceback", not faults.tracebacks, f"{len(faults.tracebacks)} logged")
    return verdict.report("faults")


if __name__ == "__main__":
    raise SystemExit(main())
