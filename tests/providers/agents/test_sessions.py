"""Agents and sessions as stored state: lookups, deletes, restarts and replicas sharing a store."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from llama_stack.apis.agents import (
    AgentConfig,
    CreateAgentRequest,
    CreateSessionRequest,
    GetSessionRequest,
    SessionRef,
    StepRef,
    TurnRef,
)
from llama_stack.apis.common import content_text
from llama_stack.apis.errors import ModelNotFound, NotFound
from llama_stack.distribution.provider import Api
from tests.providers.agents.conftest import StackFactory
from tests.providers.agents.fakes import final_turn, new_session, run_config, run_turn, running, scripted_llm, user


async def test_unknown_ids_are_not_found(agent_stack: StackFactory) -> None:
    async with agent_stack() as stack:
        agents = stack.routers[Api.agents]
        with pytest.raises(ModelNotFound, match="no-such-model"):
            await agents.create_agent(
                CreateAgentRequest(agent_config=AgentConfig(model="no-such-model", instructions=""))
            )
        agent_id, session_id = await new_session(agents)
        with pytest.raises(NotFound, match="Agent 'nope'"):
            await agents.create_session(CreateSessionRequest(agent_id="nope", session_name="x"))
        with pytest.raises(NotFound, match="Agent 'nope'"):
            await run_turn(agents, "nope", session_id, user("hi"))
        with pytest.raises(NotFound, match="Session 'nope'"):
            await run_turn(agents, agent_id, "nope", user("hi"))
        with pytest.raises(NotFound, match="Turn 'nope'"):
            await agents.get_turn(TurnRef(agent_id=agent_id, session_id=session_id, turn_id="nope"))
        turn = final_turn(await run_turn(agents, agent_id, session_id, user("hi")))
        with pytest.raises(NotFound, match="Step 'nope'"):
            await agents.get_step(
                StepRef(agent_id=agent_id, session_id=session_id, turn_id=turn.turn_id, step_id="nope")
            )
        # A session is reached only through its own agent.
        other_agent, _ = await new_session(agents)
        with pytest.raises(NotFound):
            await agents.get_session(GetSessionRequest(agent_id=other_agent, session_id=session_id))


async def test_sessions_list_their_turns_in_order_and_filter_them(agent_stack: StackFactory) -> None:
    async with agent_stack() as stack:
        agents = stack.routers[Api.agents]
        agent_id, session_id = await new_session(agents)
        turns = [final_turn(await run_turn(agents, agent_id, session_id, user(f"turn {n}"))) for n in range(3)]

        session = await agents.get_session(GetSessionRequest(agent_id=agent_id, session_id=session_id))
        assert session.session_name == "test"
        assert [t.turn_id for t in session.turns] == [t.turn_id for t in turns]
        assert session.memory_bank is None
        only = GetSessionRequest(agent_id=agent_id, session_id=session_id, turn_ids=[turns[1].turn_id])
        assert [t.turn_id for t in (await agents.get_session(only)).turns] == [turns[1].turn_id]


async def test_deleting_a_session_or_an_agent_forgets_it(agent_stack: StackFactory) -> None:
    async with agent_stack() as stack:
        agents = stack.routers[Api.agents]
        agent_id, session_id = await new_session(agents)
        turn = final_turn(await run_turn(agents, agent_id, session_id, user("hi")))
        await agents.delete_session(SessionRef(agent_id=agent_id, session_id=session_id))
        with pytest.raises(NotFound):
            await agents.get_session(GetSessionRequest(agent_id=agent_id, session_id=session_id))
        with pytest.raises(NotFound):
            await agents.get_turn(TurnRef(agent_id=agent_id, session_id=session_id, turn_id=turn.turn_id))

        await agents.delete_agent(agent_id)
        with pytest.raises(NotFound):
            await agents.create_session(CreateSessionRequest(agent_id=agent_id, session_name="again"))
        with pytest.raises(NotFound):
            await agents.delete_agent(agent_id)


async def test_a_session_survives_a_restart(tmp_path: Path) -> None:
    config = run_config(tmp_path)
    async with running(config) as stack:
        agents = stack.routers[Api.agents]
        agent_id, session_id = await new_session(agents)
        before = final_turn(await run_turn(agents, agent_id, session_id, user("my name is Ada")))

    async with running(config) as restarted:
        agents, llm = restarted.routers[Api.agents], scripted_llm(restarted)
        session = await agents.get_session(GetSessionRequest(agent_id=agent_id, session_id=session_id))
        assert session.turns == [before]
        await run_turn(agents, agent_id, session_id, user("what is my name?"))
        history = [content_text(m.content) for m in llm.requests[0].messages]
        assert history == ["You are a test agent.", "my name is Ada", "echo: my name is Ada", "what is my name?"]


@pytest.mark.parametrize("backend", ["redis", "postgres"])
async def test_two_replicas_sharing_a_store_continue_each_others_sessions(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    namespace = f"agents{uuid.uuid4().hex[:8]}"
    if backend == "redis":
        store = {"type": "redis", "url": request.getfixturevalue("redis_url"), "namespace": namespace}
    else:
        store = {"type": "postgres", "dsn": request.getfixturevalue("postgres_dsn"), "table_name": namespace}
    async with (
        running(run_config(tmp_path / "a", agents_store=store)) as replica_a,
        running(run_config(tmp_path / "b", agents_store=store)) as replica_b,
    ):
        a, b = replica_a.routers[Api.agents], replica_b.routers[Api.agents]
        agent_id, session_id = await new_session(a)
        first = final_turn(await run_turn(a, agent_id, session_id, user("started on A")))

        second = final_turn(await run_turn(b, agent_id, session_id, user("continued on B")))
        seen_by_b = [content_text(m.content) for m in scripted_llm(replica_b).requests[0].messages]
        assert seen_by_b[1:] == ["started on A", "echo: started on A", "continued on B"]

        session = await a.get_session(GetSessionRequest(agent_id=agent_id, session_id=session_id))
        assert [t.turn_id for t in session.turns] == [first.turn_id, second.turn_id]
        ref = TurnRef(agent_id=agent_id, session_id=session_id, turn_id=second.turn_id)
        assert await a.get_turn(ref) == second
        await b.delete_agent(agent_id)
        with pytest.raises(NotFound):
            await a.get_session(GetSessionRequest(agent_id=agent_id, session_id=session_id))
