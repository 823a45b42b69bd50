"""Session-scoped fixtures that start real database servers for the tests.

Import them into tests/conftest.py:

    from tests.servers import postgres_dsn, redis_url  # noqa: F401

- `redis_url`: a private redis-server (no persistence) on a free localhost port, in a temp folder.
- `postgres_dsn`: a private Postgres 16 from the `pgserver` wheel, listening on a Unix socket
  only. As root, pgserver runs Postgres as a system user `pgserver` (created with `useradd`) and
  adds o+rx to every parent folder of the data folder and of its own binaries.

Each server starts once per session, on first use, and stops at session end. Tests that share a
server isolate themselves (e.g. by a unique namespace), since they see each other's data.
Install what the servers need with scripts/install-test-servers.sh.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

_INSTALL_HINT = "run scripts/install-test-servers.sh (apt-get install -y redis-server)"
_START_TIMEOUT_S = 20.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _redis_answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _start_redis(workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    executable = shutil.which("redis-server")
    if executable is None:
        pytest.fail(f"redis-server is not on PATH; {_INSTALL_HINT}", pytrace=False)
    log_path = workdir / "redis.log"
    last_log = ""
    for _attempt in range(3):  # the free port may be taken between probing and binding it
        port = free_port()
        with log_path.open("wb") as log:
            args = [executable, "--port", str(port), "--bind", "127.0.0.1"]
            args += ["--save", "", "--appendonly", "no", "--dir", str(workdir)]
            proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline and proc.poll() is None:
            if _redis_answers_ping(port):
                return proc, port
            time.sleep(0.05)
        _stop(proc)
        last_log = log_path.read_text(errors="replace")
    pytest.fail(f"redis-server did not answer PING; its log:\n{last_log}", pytrace=False)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """redis://127.0.0.1:<port>/0 of a redis-server started for this test session."""
    proc, port = _start_redis(tmp_path_factory.mktemp("redis"))
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        _stop(proc)


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """postgresql:// URI (Unix socket) of a Postgres server started for this test session."""
    try:
        with warnings.catch_warnings():
            # platformdirs warns, at import, when XDG_RUNTIME_DIR is unset; pgserver falls back to /tmp.
            warnings.simplefilter("ignore")
            from pgserver.postgres_server import get_server
    except ImportError:
        pytest.fail("the Python package pgserver is missing; pip install -e '.[dev]'", pytrace=False)
    # Not under pytest's basetemp: pytest resets /tmp/pytest-of-<user> to mode 0700 whenever a
    # session starts, which would lock the `pgserver` system user (used as root) out of its data.
    pgdata = Path(tempfile.mkdtemp(prefix="llamastack-test-pg-"))
    try:
        server = get_server(pgdata, cleanup_mode="delete")
    except Exception as e:
        log = pgdata / "log"
        detail = log.read_text(errors="replace") if log.exists() else ""
        shutil.rmtree(pgdata, ignore_errors=True)
        pytest.fail(f"pgserver could not start Postgres: {e!r}\n{detail}", pytrace=False)
    try:
        yield server.get_uri()
    finally:
        server.cleanup()  # stops the server and deletes pgdata
        shutil.rmtree(pgdata, ignore_errors=True)
