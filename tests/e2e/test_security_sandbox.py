"""code_interpreter, tried as a tenant would against a live server with two API keys: the code
Bob's agent runs cannot read Alice's sessions, the server user's private files or the server's
environment, nor write outside its own /tmp. The model is the scripted fake ("run: <code>"
calls code_interpreter), the sandbox is real bubblewrap."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from llama_stack_client import LlamaStackClient

from tests.live import LiveServer, live_server
from tests.providers.agents.fakes import MODEL, install, run_config

install()

KEYS = {"alice": "sk-alice-0123456789abcdef", "bob": "sk-bob-0123456789abcdef00"}
SECRET = f"alice-secret-{uuid.uuid4().hex}"


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("security-sandbox")


@pytest.fixture(scope="module")
def private_file() -> Iterator[Path]:
    """A file of the server's user, closed to everyone else (an SSH key, a cloud credential)."""
    path = Path.home() / f".server-credential-{uuid.uuid4().hex}"
    path.write_text(SECRET)
    path.chmod(0o600)
    yield path
    path.unlink()


@pytest.fixture(scope="module")
def server(state: Path, monkeypatch_module: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed (scripts/install-test-servers.sh)")
    monkeypatch_module.setenv("SERVER_ONLY_TOKEN", SECRET)  # in the server's environment
    config: dict[str, Any] = run_config(state, safety=False, memory=False, sandbox={"isolation": "auto"})
    config["server"] = {"auth": {"keys": [{"name": name, "key": key} for name, key in KEYS.items()]}}
    with live_server(config) as live:
        yield live


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def client(server: LiveServer, who: str) -> LlamaStackClient:
    return LlamaStackClient(
        base_url=server.base_url, default_headers={"Authorization": f"Bearer {KEYS[who]}"}, max_retries=0
    )


def run_code(server: LiveServer, who: str, code: str) -> str:
    """What the code printed, as the tool answered it inside the turn."""
    api = client(server, who)
    config: Any = {
        "model": MODEL,
        "instructions": "Run code.",
        "tools": [{"type": "code_interpreter"}],
        "enable_session_persistence": True,
        "max_infer_iters": 3,
    }
    agent = api.agents.create(agent_config=config)
    session = api.agents.session.create(agent_id=agent.agent_id, session_name=who)
    turn = api.agents.turn.create(
        agent_id=agent.agent_id,
        session_id=session.session_id,
        messages=[{"role": "user", "content": f"run: {code}"}],
        stream=False,
    )
    step = next(s for s in turn.steps if s.step_type == "tool_execution")
    return str(step.tool_responses[0].content)


def test_another_tenants_sessions_and_the_servers_secrets_are_out_of_reach(
    server: LiveServer, state: Path, private_file: Path
) -> None:
    # Alice stores a secret in her session.
    assert SECRET.startswith("alice-secret")
    alice_output = run_code(server, "alice", f"print('noted: {SECRET}')")
    assert f"noted: {SECRET}" in alice_output
    stored = sorted(state.glob("agents.db*"))  # the database and its write-ahead log
    assert SECRET.encode() in b"".join(p.read_bytes() for p in stored), "the secret is in the agents store"

    # Bob's code goes after it, the server user's credential and the server's environment.
    targets = [*map(str, stored), str(private_file), "/proc/1/environ", "/proc/self/environ"]
    probe = (
        "import os\n"
        f"for p in {targets!r}:\n"
        "    try:\n"
        "        print(p, open(p, 'rb').read()[:4000])\n"
        "    except OSError as e:\n"
        "        print(p, 'blocked', type(e).__name__)\n"
        "print('root', sorted(os.listdir('/')))\n"
        f"open({str(state / 'planted')!r}, 'w')\n"
    )
    bob_output = run_code(server, "bob", probe)
    assert "[isolation] bubblewrap sandbox" in bob_output
    assert SECRET not in bob_output
    assert all(f"{path} blocked FileNotFoundError" in bob_output for path in stored)
    assert f"{private_file} blocked FileNotFoundError" in bob_output
    assert "'home'" not in bob_output and "'work'" not in bob_output
    assert not (state / "planted").exists()
