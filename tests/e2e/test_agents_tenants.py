"""Agents, sessions and turns belong to the API key that created them: through a live server with
four keys (two tenants, an admin, an admin limited to another model), with the official
llama-stack-client 0.0.63 and raw HTTP. Another tenant's ids, on every agents route, answer
exactly as ids that do not exist, and change nothing; a turn runs the agent's model only for a key
that may use it; two turns sent at once on one session run one and answer 409 to the other."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from llama_stack_client import LlamaStackClient, NotFoundError

from tests.live import LiveServer, live_server
from tests.providers.agents.fakes import EMBEDDER, MODEL, install, run_config, scripted_llm

install()

KEYS = {
    "alice": "sk-alice-agents-0123456789",
    "bob": "sk-bob-agents-0123456789",
    "root": "sk-root-agents-0123456789",
    "auditor": "sk-auditor-agents-0123456789",
}
MISSING = "00000000-0000-4000-8000-000000000000"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    if shutil.which("bwrap") is None:  # with API keys the agents' sandbox must be bubblewrap
        pytest.skip("bubblewrap is not installed (scripts/install-test-servers.sh)")
    config = run_config(tmp_path_factory.mktemp("agents-tenants"))
    config["server"] = {
        "auth": {
            "keys": [
                {"name": "alice", "key": KEYS["alice"]},
                {"name": "bob", "key": KEYS["bob"]},
                {"name": "root", "key": KEYS["root"], "admin": True},
                # Sees every tenant's agents, but may not run their model.
                {"name": "auditor", "key": KEYS["auditor"], "admin": True, "scopes": {"models": [EMBEDDER]}},
            ]
        }
    }
    with live_server(config) as live:
        yield live


def http(server: LiveServer, name: str) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {KEYS[name]}"}, timeout=30)


def client(server: LiveServer, name: str) -> LlamaStackClient:
    return LlamaStackClient(
        base_url=server.base_url, default_headers={"Authorization": f"Bearer {KEYS[name]}"}, max_retries=0
    )


@dataclass
class Ids:
    agent: str
    session: str
    turn: str
    step: str


def new_conversation(server: LiveServer, name: str, text: str = "hello") -> Ids:
    with http(server, name) as session:
        agent_config = {"model": MODEL, "instructions": "Be brief.", "enable_session_persistence": True}
        agent = session.post("/alpha/agents/create", json={"agent_config": agent_config}).json()["agent_id"]
        created = session.post("/alpha/agents/session/create", json={"agent_id": agent, "session_name": "s"})
        session_id = created.json()["session_id"]
        turn = session.post(
            "/alpha/agents/turn/create",
            json={"agent_id": agent, "session_id": session_id, "messages": [{"role": "user", "content": text}]},
        ).json()
    return Ids(agent, session_id, turn["turn_id"], turn["steps"][0]["step_id"])


@pytest.fixture(scope="module")
def alice(server: LiveServer) -> Ids:
    return new_conversation(server, "alice", "my secret is 4521")


def answers(server: LiveServer, name: str, ids: Ids) -> dict[str, tuple[int, str]]:
    """Status and error message of every agents route, called with `ids`, each id in the message
    replaced by its role (so the answers for two sets of ids compare equal when they say the same)."""
    base = {"agent_id": ids.agent, "session_id": ids.session}
    message = [{"role": "user", "content": "tell me the secret"}]
    new_session = {"agent_id": ids.agent, "session_name": "x"}
    streamed = {**base, "messages": message, "stream": True}
    calls: dict[str, tuple[str, str, dict[str, Any]]] = {
        "session create": ("POST", "/alpha/agents/session/create", {"json": new_session}),
        "session get (query)": ("GET", "/alpha/agents/session/get", {"params": base}),
        "session get (body)": ("POST", "/alpha/agents/session/get", {"json": base}),
        "turn create": ("POST", "/alpha/agents/turn/create", {"json": {**base, "messages": message}}),
        "turn create (stream)": ("POST", "/alpha/agents/turn/create", {"json": streamed}),
        "turn get": ("GET", "/alpha/agents/turn/get", {"params": {**base, "turn_id": ids.turn}}),
        "step get": ("GET", "/alpha/agents/step/get", {"params": {**base, "turn_id": ids.turn, "step_id": ids.step}}),
        "session delete": ("POST", "/alpha/agents/session/delete", {"json": base}),
        "agent delete": ("POST", "/alpha/agents/delete", {"json": {"agent_id": ids.agent}}),
    }
    seen: dict[str, tuple[int, str]] = {}
    with http(server, name) as session:
        for label, (method, path, kwargs) in calls.items():
            response = session.request(method, path, **kwargs)
            text = response.json()["error"]["message"] if response.status_code >= 400 else ""
            for role, value in (("<agent>", ids.agent), ("<session>", ids.session), ("<turn>", ids.turn)):
                text = text.replace(value, role)
            seen[label] = (response.status_code, text.replace(ids.step, "<step>"))
    return seen


def test_another_tenants_agent_session_turn_and_step_are_indistinguishable_from_missing_ones(
    server: LiveServer, alice: Ids
) -> None:
    attacked = answers(server, "bob", alice)
    missing = answers(server, "bob", Ids(MISSING, MISSING + "1", MISSING + "2", MISSING + "3"))
    assert attacked == missing
    assert {status for status, _ in attacked.values()} == {404}


def test_bob_s_own_agent_does_not_open_alice_s_session(server: LiveServer, alice: Ids) -> None:
    bob = new_conversation(server, "bob")
    mixed = answers(server, "bob", Ids(bob.agent, alice.session, alice.turn, alice.step))
    assert {label: status for label, (status, _) in mixed.items()} == {
        "session create": 200,  # a session of bob's own agent
        "session get (query)": 404,
        "session get (body)": 404,
        "turn create": 404,
        "turn create (stream)": 404,
        "turn get": 404,
        "step get": 404,
        "session delete": 404,
        "agent delete": 200,  # bob's own agent, last
    }


def test_the_owner_still_has_everything_after_the_attacks(server: LiveServer, alice: Ids) -> None:
    answers(server, "bob", alice)
    session = client(server, "alice").agents.session.retrieve(agent_id=alice.agent, session_id=alice.session)
    assert [turn.turn_id for turn in session.turns] == [alice.turn]  # bob's turns never ran
    with pytest.raises(NotFoundError):
        client(server, "bob").agents.session.retrieve(agent_id=alice.agent, session_id=alice.session)


def test_an_admin_key_sees_and_continues_every_tenant_s_sessions(server: LiveServer) -> None:
    carol = new_conversation(server, "alice", "a note")
    root = client(server, "root")
    session = root.agents.session.retrieve(agent_id=carol.agent, session_id=carol.session)
    assert [turn.turn_id for turn in session.turns] == [carol.turn]
    step = root.agents.steps.retrieve(
        agent_id=carol.agent, session_id=carol.session, turn_id=carol.turn, step_id=carol.step
    )
    assert step.step.step_id == carol.step
    with http(server, "root") as admin:
        messages = [{"role": "user", "content": "admin here"}]
        turn = admin.post(
            "/alpha/agents/turn/create",
            json={"agent_id": carol.agent, "session_id": carol.session, "messages": messages},
        )
        assert turn.status_code == 200
        # The admin's turn is the admin's: the tenant does not see it, the admin does.
        mine = {"agent_id": carol.agent, "session_id": carol.session, "turn_id": turn.json()["turn_id"]}
        assert admin.get("/alpha/agents/turn/get", params=mine).status_code == 200
    with http(server, "alice") as owner:
        hidden = owner.get("/alpha/agents/turn/get", params=mine)
    assert hidden.status_code == 404


def test_a_turn_needs_a_key_that_may_use_the_agent_s_model(server: LiveServer, alice: Ids) -> None:
    with http(server, "auditor") as auditor:
        seen = auditor.get("/alpha/agents/session/get", params={"agent_id": alice.agent, "session_id": alice.session})
        assert seen.status_code == 200  # an admin key sees the session...
        refused = auditor.post(
            "/alpha/agents/turn/create",
            json={"agent_id": alice.agent, "session_id": alice.session, "messages": [{"role": "user", "content": "x"}]},
        )
        agent_config = {"model": MODEL, "instructions": "", "enable_session_persistence": True}
        created = auditor.post("/alpha/agents/create", json={"agent_config": agent_config})
    assert refused.status_code == 403  # ...but may not run the agent's model on its own behalf
    assert f"may not use model '{MODEL}'" in refused.json()["error"]["message"]
    assert created.status_code == 403


def test_two_turns_sent_at_once_on_one_session_run_one_and_refuse_the_other(server: LiveServer) -> None:
    ids = new_conversation(server, "alice")
    llm = scripted_llm(server.stack)
    statuses: list[int] = []

    def send(text: str) -> None:
        with http(server, "alice") as session:
            body = {"agent_id": ids.agent, "session_id": ids.session, "messages": [{"role": "user", "content": text}]}
            statuses.append(session.post("/alpha/agents/turn/create", json=body).status_code)

    llm.config.latency_s = 1.0
    try:
        threads = [threading.Thread(target=send, args=(f"at once {n}",)) for n in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        llm.config.latency_s = 0.0
    assert sorted(statuses) == [200, 409]
    session = client(server, "alice").agents.session.retrieve(agent_id=ids.agent, session_id=ids.session)
    inputs = [turn.input_messages[0].content for turn in session.turns]
    assert inputs[0] == "hello" and len(inputs) == 2 and str(inputs[1]).startswith("at once")


def test_documents_an_admin_attaches_stay_readable_by_the_session_s_owner(server: LiveServer) -> None:
    ids = new_conversation(server, "alice")
    body = {"agent_id": ids.agent, "session_id": ids.session}
    with http(server, "root") as root:
        attached = root.post(
            "/alpha/agents/turn/create",
            json={
                **body,
                "messages": [{"role": "user", "content": "file this"}],
                "attachments": [{"content": "The archive password is 9931.", "mime_type": "text/plain"}],
            },
        )
        assert attached.status_code == 200
    with http(server, "alice") as alice:
        session = alice.get("/alpha/agents/session/get", params=body).json()
        assert session["memory_bank"]["identifier"] == f"session-{ids.session}"
        asked = alice.post(
            "/alpha/agents/turn/create",
            json={**body, "messages": [{"role": "user", "content": "what is the archive password?"}]},
        )
    assert asked.status_code == 200 and "9931" in str(asked.json()["steps"][0]["inserted_context"])
    with http(server, "bob") as bob:  # and it is still no one else's
        query = {"bank_id": f"session-{ids.session}", "query": "archive password"}
        assert bob.post("/alpha/memory/query", json=query).status_code == 404
