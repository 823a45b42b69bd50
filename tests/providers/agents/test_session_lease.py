"""One turn at a time per session: a second turn sent while one runs answers Conflict (409),
within a replica and across replicas sharing the agents store; a replica killed mid-turn frees
the session by itself within two lease periods; history never interleaves."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncGenerator
from contextlib import aclosing
from pathlib import Path
from typing import Any, cast

import pytest

from llama_stack.apis.agents import (
    CreateTurnRequest,
    GetSessionRequest,
    SessionRef,
    TurnCompletePayload,
    TurnStreamChunk,
)
from llama_stack.apis.common import content_text
from llama_stack.apis.errors import Conflict, NotFound
from llama_stack.distribution.provider import Api
from tests.providers.agents.fakes import final_turn, new_session, run_config, run_turn, running, user

LEASE_S = 0.3
REPO = Path(__file__).resolve().parents[3]


async def history(agents: Any, agent_id: str, session_id: str) -> list[str]:
    session = await agents.get_session(GetSessionRequest(agent_id=agent_id, session_id=session_id))
    return [content_text(m.content) for turn in session.turns for m in turn.input_messages]


async def test_a_second_turn_on_a_busy_session_is_refused_while_the_first_runs(tmp_path: Path) -> None:
    # The model takes several lease periods: the running turn keeps renewing its lease.
    async with running(run_config(tmp_path, llm={"latency_s": 5 * LEASE_S}, lease_s=LEASE_S)) as stack:
        agents = stack.routers[Api.agents]
        agent_id, session_id = await new_session(agents)
        first = asyncio.create_task(run_turn(agents, agent_id, session_id, user("first")))
        await asyncio.sleep(3 * LEASE_S)
        with pytest.raises(Conflict, match=f"Session '{session_id}' is running another turn"):
            await run_turn(agents, agent_id, session_id, user("second"))
        other_agent, other_session = await new_session(agents)  # other sessions are not held up
        other = asyncio.create_task(run_turn(agents, other_agent, other_session, user("elsewhere")))

        assert final_turn(await first).output_message.content == "echo: first"
        assert final_turn(await other).output_message.content == "echo: elsewhere"
        await run_turn(agents, agent_id, session_id, user("third"))  # the session is free again
        assert await history(agents, agent_id, session_id) == ["first", "third"]


async def test_a_session_or_agent_running_a_turn_is_not_deleted_under_it(tmp_path: Path) -> None:
    async with running(run_config(tmp_path, llm={"latency_s": 3 * LEASE_S}, lease_s=LEASE_S)) as stack:
        agents = stack.routers[Api.agents]
        agent_id, session_id = await new_session(agents)
        running_turn = asyncio.create_task(run_turn(agents, agent_id, session_id, user("busy")))
        await asyncio.sleep(LEASE_S)
        with pytest.raises(Conflict, match="is running a turn; delete it when that turn has ended"):
            await agents.delete_session(SessionRef(agent_id=agent_id, session_id=session_id))
        with pytest.raises(Conflict):
            await agents.delete_agent(agent_id)
        await running_turn
        assert await history(agents, agent_id, session_id) == ["busy"]
        await agents.delete_agent(agent_id)
        with pytest.raises(NotFound):
            await agents.get_session(GetSessionRequest(agent_id=agent_id, session_id=session_id))


async def test_two_turns_sent_at_once_run_one_and_refuse_the_other(tmp_path: Path) -> None:
    async with running(run_config(tmp_path, llm={"latency_s": 0.2})) as stack:
        agents = stack.routers[Api.agents]
        agent_id, session_id = await new_session(agents)
        results = await asyncio.gather(
            *(run_turn(agents, agent_id, session_id, user(f"turn {n}")) for n in range(4)), return_exceptions=True
        )
        done = [r for r in results if not isinstance(r, BaseException)]
        refused = [r for r in results if isinstance(r, BaseException)]
        assert len(done) == 1 and len(refused) == 3 and all(isinstance(r, Conflict) for r in refused)
        assert await history(agents, agent_id, session_id) == [
            content_text(final_turn(done[0]).input_messages[0].content)
        ]


async def test_the_next_turn_may_start_as_soon_as_turn_complete_arrives(tmp_path: Path) -> None:
    """The app hears turn_complete only after the session is free: its next turn (a client tool's
    result, say) is never refused, even while the finished stream is still being closed."""
    async with running(run_config(tmp_path)) as stack:
        agents = stack.routers[Api.agents]
        agent_id, session_id = await new_session(agents)
        request = CreateTurnRequest(agent_id=agent_id, session_id=session_id, messages=[user("one")], stream=True)
        async with aclosing(cast(AsyncGenerator[TurnStreamChunk, None], agents.create_turn(request))) as stream:
            async for chunk in stream:
                if isinstance(chunk.event.payload, TurnCompletePayload):
                    break  # the stream is still open here
            await run_turn(agents, agent_id, session_id, user("two"))
        assert await history(agents, agent_id, session_id) == ["one", "two"]


@pytest.mark.parametrize("backend", ["sqlite", "redis", "postgres"])
async def test_replicas_sharing_a_store_refuse_each_other_s_concurrent_turns(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    namespace = f"lease{uuid.uuid4().hex[:8]}"
    store: dict[str, Any] = {"type": "sqlite", "db_path": str(tmp_path / "shared-agents.db")}
    if backend == "redis":
        store = {"type": "redis", "url": request.getfixturevalue("redis_url"), "namespace": namespace}
    elif backend == "postgres":
        store = {"type": "postgres", "dsn": request.getfixturevalue("postgres_dsn"), "table_name": namespace}
    slow = {"latency_s": 4 * LEASE_S}
    async with (
        running(run_config(tmp_path / "a", agents_store=store, llm=slow, lease_s=LEASE_S)) as replica_a,
        running(run_config(tmp_path / "b", agents_store=store, llm=slow, lease_s=LEASE_S)) as replica_b,
    ):
        a, b = replica_a.routers[Api.agents], replica_b.routers[Api.agents]
        agent_id, session_id = await new_session(a)
        on_a = asyncio.create_task(run_turn(a, agent_id, session_id, user("on A")))
        await asyncio.sleep(2 * LEASE_S)
        with pytest.raises(Conflict):
            await run_turn(b, agent_id, session_id, user("on B"))
        await on_a
        await run_turn(b, agent_id, session_id, user("on B, later"))
        assert await history(a, agent_id, session_id) == ["on A", "on B, later"]


# A replica in a process of its own, killed mid-turn: it leaves its lease behind, unreleased.
REPLICA = """
import asyncio, json, sys
from tests.providers.agents.fakes import install, running, user
from llama_stack.distribution.provider import Api
install()

async def main(config, agent_id, session_id):
    async with running(config) as stack:
        agents = stack.routers[Api.agents]
        from llama_stack.apis.agents import CreateTurnRequest
        request = CreateTurnRequest(agent_id=agent_id, session_id=session_id, messages=[user("doomed")], stream=True)
        async for chunk in agents.create_turn(request):
            print(chunk.event.payload.event_type, flush=True)

asyncio.run(main(json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]))
"""


async def test_a_replica_killed_mid_turn_frees_the_session_within_two_lease_periods(tmp_path: Path) -> None:
    store = {"type": "sqlite", "db_path": str(tmp_path / "shared-agents.db")}
    lease_s = 1.0
    async with running(run_config(tmp_path / "survivor", agents_store=store, lease_s=lease_s)) as survivor:
        agents = survivor.routers[Api.agents]
        agent_id, session_id = await new_session(agents)
        doomed_config = run_config(tmp_path / "doomed", agents_store=store, llm={"latency_s": 600}, lease_s=lease_s)
        replica = await asyncio.create_subprocess_exec(
            *[sys.executable, "-c", REPLICA, json.dumps(doomed_config), agent_id, session_id],
            cwd=REPO,
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        try:
            assert replica.stdout is not None
            line = await asyncio.wait_for(replica.stdout.readline(), timeout=60)
            assert line.strip() == b"turn_start"  # the doomed turn holds the session
            await asyncio.sleep(1.5 * lease_s)  # long enough that only renewals keep it held
            with pytest.raises(Conflict):
                await run_turn(agents, agent_id, session_id, user("while it runs"))
        finally:
            replica.send_signal(signal.SIGKILL)
            await replica.wait()
        killed_at = time.monotonic()
        while True:
            try:
                turn = final_turn(await run_turn(agents, agent_id, session_id, user("after the crash")))
                break
            except Conflict:
                assert time.monotonic() - killed_at < 2 * lease_s + 0.5, "the dead replica's lease never expired"
                await asyncio.sleep(0.1)
        assert turn.output_message.content == "echo: after the crash"
        assert await history(agents, agent_id, session_id) == ["after the crash"]
