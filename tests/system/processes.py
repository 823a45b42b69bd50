"""The processes the system tier starts, each on 127.0.0.1 in its own process so that a test can
kill it, restart it on the same port and state, and read its RSS and open file descriptors: a
stack server (tests/system/serve.py), the fake OpenAI backend, Redis with an fsync-always
append-only file, Postgres that can crash. A child's output goes to a log file in the test's
folder, never to a pipe nobody reads (a full pipe would stall a server that logs).

The session-wide Redis and Postgres of the other tiers are in tests/servers.py; the ones here
are the tier's own because its tests kill them.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.servers import free_port

REPO = Path(__file__).resolve().parents[2]
# The server's outbound HTTP (document and image URLs) goes to a closed local port: a generated
# URL can never make a test reach beyond 127.0.0.1.
NO_OUTSIDE = {
    name: "http://127.0.0.1:9"
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")
} | {"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}


def wait_until(condition: Callable[[], bool], timeout_s: float, interval_s: float = 0.005) -> float | None:
    """Seconds until `condition()` held, or None when it did not within `timeout_s`."""
    started = time.perf_counter()
    while True:
        if condition():
            return time.perf_counter() - started
        if time.perf_counter() - started > timeout_s:
            return None
        time.sleep(interval_s)


def rss_mb(pid: int) -> float:
    """Resident set size in MiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def open_sockets(pid: int) -> int:
    count = 0
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            count += os.readlink(f"/proc/{pid}/fd/{name}").startswith("socket:")
        except OSError:
            continue
    return count


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code < 500
    except httpx.HTTPError:
        return False


class Child:
    """A child process with its output in a log file."""

    def __init__(self, name: str, command: list[str], log_path: Path, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.command = command
        self.log_path = log_path
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None

    def spawn(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command,
                cwd=REPO,
                env={**os.environ, **(self.env or {})},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C of pytest is not delivered twice
            )

    def started_when(self, ready: Callable[[], bool], timeout_s: float) -> None:
        """Spawn, then wait for `ready()`; fail with the child's log when it does not come."""
        self.spawn()
        if wait_until(lambda: not self.alive() or ready(), timeout_s, 0.05) is None or not self.alive():
            tail = self.log_tail()
            self.stop()
            raise RuntimeError(f"{self.name} did not start; its log:\n{tail}")

    @property
    def pid(self) -> int:
        assert self.process is not None, f"{self.name} was never started"
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""

    def sigkill(self) -> None:
        if self.alive():
            assert self.process is not None
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=60)

    def stop(self, grace_s: float = 20.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)


class StackServer(Child):
    """A stack server over a run config dict, on a port that survives restarts."""

    def __init__(self, config: dict[str, Any], folder: Path, name: str = "stack") -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        run_yaml = folder / f"{name}.run.yaml"
        run_yaml.write_text(yaml.safe_dump(config, sort_keys=False))
        command = [sys.executable, "-m", "tests.system.serve", str(run_yaml), "--port", str(self.port)]
        super().__init__(name, command, folder / f"{name}.log", NO_OUTSIDE)
        self.earlier_logs: list[Path] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> StackServer:
        self.started_when(lambda: answers(f"{self.url}/alpha/health"), timeout_s=180)
        return self

    def restart_after_kill(self) -> None:
        """Start again on the same port and state, keeping the killed run's log for tracebacks()."""
        earlier = self.log_path.with_suffix(f".{len(self.earlier_logs)}.log")
        self.log_path.rename(earlier)
        self.earlier_logs.append(earlier)
        self.start()

    def rss_mb(self) -> float:
        return rss_mb(self.pid)

    def open_fds(self) -> int:
        return open_fds(self.pid)

    def tracebacks(self) -> list[str]:
        """Every traceback the server logged (an unhandled error leaves one), each ending with
        its error line, over all its runs."""
        blocks: list[str] = []
        for log in [*self.earlier_logs, self.log_path]:
            current: list[str] | None = None
            for line in log.read_text(errors="replace").splitlines() if log.exists() else []:
                if line.startswith("Traceback (most recent call last):"):
                    current = [line]
                elif current is not None:
                    current.append(line)
                    if line and not line.startswith(" "):  # the error line ends the traceback
                        blocks.append("\n".join(current))
                        current = None
        return blocks


class FakeBackend(Child):
    """tests/fakes/openai_server.py in its own process; faults are queued over HTTP."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        command = [sys.executable, "-m", "tests.fakes.openai_server", "--port", str(self.port)]
        super().__init__("fake-openai", command, folder / "fake-openai.log")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def start(self) -> FakeBackend:
        self.started_when(lambda: answers(f"{self.url}/fake/stats"), timeout_s=60)
        return self

    def fault(self, mode: str, times: int = 1) -> None:
        httpx.post(f"{self.url}/fake/faults", json={"mode": mode, "times": times}, timeout=5).raise_for_status()

    def open_streams(self) -> int:
        return int(httpx.get(f"{self.url}/fake/stats", timeout=5).json()["open_streams"])


class RedisServer(Child):
    """redis-server with an fsync-always append-only file: a write Redis acknowledged survives
    a SIGKILL of Redis itself."""

    def __init__(self, folder: Path) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            raise RuntimeError("redis-server is not on PATH: run scripts/install-test-servers.sh")
        self.port = free_port()
        workdir = folder / "redis"
        workdir.mkdir(parents=True, exist_ok=True)
        command = [executable, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(workdir)]
        command += ["--save", "", "--appendonly", "yes", "--appendfsync", "always"]
        super().__init__("redis", command, folder / "redis.log")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        import redis

        def pong() -> bool:
            try:
                return bool(redis.Redis(port=self.port, socket_timeout=1).ping())
            except redis.RedisError:
                return False

        self.started_when(pong, timeout_s=30)
        return self


class PostgresServer:
    """Postgres 16 with pgvector from the pgserver wheel, on a Unix socket; `crash()` stops it
    the way a crash would (pg_ctl -m immediate: no checkpoint, WAL replay at the next start)."""

    def __init__(self) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
            from pgserver.postgres_server import get_server
        # Outside pytest's temp folders: as root, pgserver runs Postgres as a system user that
        # must reach its data folder (tests/servers.py says why).
        self.pgdata = Path(tempfile.mkdtemp(prefix="llamastack-system-pg-"))
        self.server: Any = get_server(self.pgdata, cleanup_mode="delete")
        self.uri: str = self.server.get_uri()

    def crash(self) -> None:
        from pgserver import _commands

        pg_ctl: Any = getattr(_commands, "pg_ctl")  # noqa: B009 - made at import time, invisible to mypy
        pg_ctl(["-m", "immediate", "-w", "stop"], pgdata=self.pgdata, user=self.server.system_user)

    def start(self) -> None:
        with self.server._lock:
            self.server.ensure_postgres_running()

    def close(self) -> None:
        try:
            self.server.cleanup()
        finally:
            shutil.rmtree(self.pgdata, ignore_errors=True)
