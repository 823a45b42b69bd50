"""Fixtures of the memory suites: a Chroma server (`chroma run` from this venv), and one stack per
memory provider, built once per test module. Postgres comes from tests/servers.py."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from tests.providers.memory.harness import PROVIDERS, MemoryHarness, Servers, install_memory_providers
from tests.servers import free_port

install_memory_providers()

_CHROMA_START_TIMEOUT_S = 60.0


def _chroma_cli() -> str:
    beside_python = Path(sys.executable).parent / "chroma"
    found = str(beside_python) if beside_python.exists() else shutil.which("chroma")
    if found is None:
        pytest.fail("the `chroma` CLI is missing; pip install -e '.[chroma]'", pytrace=False)
    return found


@pytest.fixture(scope="session")
def chroma_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """http://127.0.0.1:<port> of a Chroma server started for this test session."""
    workdir = tmp_path_factory.mktemp("chroma")
    port = free_port()
    log_path = workdir / "chroma.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [_chroma_cli(), "run", "--path", str(workdir / "data"), "--host", "127.0.0.1", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + _CHROMA_START_TIMEOUT_S
        while True:
            try:
                if httpx.get(f"{url}/api/v2/heartbeat", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"chroma run did not start; its log:\n{log_path.read_text(errors='replace')}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def servers(request: pytest.FixtureRequest) -> Servers:
    return Servers(
        postgres_dsn=lambda: str(request.getfixturevalue("postgres_dsn")),
        chroma_url=lambda: str(request.getfixturevalue("chroma_url")),
    )


@pytest.fixture(scope="module", params=PROVIDERS)
async def harness(
    request: pytest.FixtureRequest, servers: Servers, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[MemoryHarness]:
    """A stack serving memory with the provider of this parameter, shared by a module's tests."""
    name: str = request.param
    built = await MemoryHarness.start(name, tmp_path_factory.mktemp(f"memory-{name}"), servers)
    yield built
    await built.shutdown()
