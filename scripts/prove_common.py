"""What the proof scripts (scripts/prove_*.py) share: the child processes they start (a stack
server, the fake OpenAI backend, Redis, Postgres), figures about a process (RSS, open file
descriptors), and the verdict that sets a script's exit status.

Every child listens on 127.0.0.1 (Postgres on a Unix socket only) and is stopped when its
context exits; a child's stderr goes to a file in the scratch folder, never to a pipe nobody
reads. The stack server is started as

    python -m scripts.prove_common serve run.yaml --port N

which installs the test providers (tests/scripted.py, the scripted Llama Guard, the agents
provider when no entry point names it yet) and then serves exactly as `llama stack run` does
(llama_stack.server.run.serve): build the stack, then uvicorn on the same loop.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.servers import free_port

REPO = Path(__file__).resolve().parents[1]
# The server's outbound HTTP (document and image URLs) goes to a closed local port: a generated
# URL can never make the proof reach beyond 127.0.0.1.
NO_OUTSIDE = {
    "HTTP_PROXY": "http://127.0.0.1:9",
    "HTTPS_PROXY": "http://127.0.0.1:9",
    "ALL_PROXY": "http://127.0.0.1:9",
    "http_proxy": "http://127.0.0.1:9",
    "https_proxy": "http://127.0.0.1:9",
    "all_proxy": "http://127.0.0.1:9",
    "NO_PROXY": "127.0.0.1,localhost",
    "no_proxy": "127.0.0.1,localhost",
}


def wait_until(condition: Callable[[], bool], timeout_s: float, interval_s: float = 0.005) -> float | None:
    """Seconds until `condition()` held, or None when it did not within `timeout_s`."""
    started = time.perf_counter()
    while True:
        if condition():
            return time.perf_counter() - started
        if time.perf_counter() - started > timeout_s:
            return None
        time.sleep(interval_s)


# --- figures about a process -------------------------------------------------------------------


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
            if os.readlink(f"/proc/{pid}/fd/{name}").startswith("socket:"):
                count += 1
        except OSError:
            continue
    return count


# --- the verdict -------------------------------------------------------------------------------


@dataclass
class Verdict:
    """Named checks; the script exits 1 when any failed."""

    checks: list[tuple[str, bool, str]] = field(default_factory=list)

    def check(self, name: str, ok: bool, detail: str = "") -> bool:
        self.checks.append((name, ok, detail))
        return ok

    @property
    def failed(self) -> list[tuple[str, bool, str]]:
        return [c for c in self.checks if not c[1]]

    def report(self, title: str) -> int:
        print(f"\n{title}: {len(self.checks) - len(self.failed)}/{len(self.checks)} checks passed")
        for name, ok, detail in self.checks:
            print(f"  [{'ok' if ok else 'FAIL'}] {name}{f'  ({detail})' if detail else ''}")
        print("PROOF HOLDS" if not self.failed else "PROOF FAILED")
        return 0 if not self.failed else 1


def summarise_traceback(traceback: str) -> str:
    """A traceback cut to the project's own frames and its error line."""
    lines = traceback.splitlines()
    kept = []
    for i, line in enumerate(lines):
        if line.startswith('  File "') and "/site-packages/" not in line and "<frozen" not in line:
            kept += lines[i : i + 2]
    return "\n".join([*kept, lines[-1]])


def print_tracebacks(tracebacks: list[str]) -> None:
    for summary, count in Counter(summarise_traceback(block) for block in tracebacks).items():
        print(f"\nserver traceback (logged {count}x; the project's frames and the error):\n{summary}")


def table(headers: list[str], rows: list[list[Any]]) -> str:
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


# --- child processes ---------------------------------------------------------------------------


class Child:
    """A child process with its stderr (and stdout) in a log file."""

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
                start_new_session=True,  # a Ctrl-C of the script is not delivered twice
            )

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

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.alive():
            assert self.process is not None
            self.process.send_signal(sig)
            self.process.wait(timeout=60)

    def stop(self, grace_s: float = 20.0) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
        return self.process.returncode


def _get_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code < 500
    except httpx.HTTPError:
        return False


class StackServer(Child):
    """A stack server over a run config dict, in its own process (so it can be SIGKILLed and
    measured), on a fixed port that survives restarts."""

    def __init__(self, config: dict[str, Any], scratch: Path, name: str = "stack", env: dict[str, str] | None = None):
        scratch.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.run_yaml = scratch / f"{name}.run.yaml"
        self.run_yaml.write_text(yaml.safe_dump(config, sort_keys=False))
        command = [sys.executable, "-m", "scripts.prove_common", "serve", str(self.run_yaml), "--port", str(self.port)]
        super().__init__(name, command, scratch / f"{name}.log", {**NO_OUTSIDE, **(env or {})})

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 180.0) -> StackServer:
        self.spawn()
        healthy = wait_until(lambda: not self.alive() or _get_ok(f"{self.url}/alpha/health"), timeout_s, 0.1)
        if healthy is None or not self.alive():
            tail = self.log_tail()
            self.stop()
            raise SystemExit(f"the stack server did not start; its log:\n{tail}")
        return self

    def rss_mb(self) -> float:
        return rss_mb(self.pid)

    def open_fds(self) -> int:
        return open_fds(self.pid)

    def sigkill(self) -> None:
        self.kill(signal.SIGKILL)

    def tracebacks(self) -> list[str]:
        """Every traceback the server logged (an unhandled error leaves one), each ending with
        its error line."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        blocks: list[str] = []
        current: list[str] | None = None
        for line in text.splitlines():
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

    def __init__(self, scratch: Path) -> None:
        self.port = free_port()
        command = [sys.executable, "-m", "tests.fakes.openai_server", "--port", str(self.port)]
        super().__init__("fake-openai", command, scratch / "fake-openai.log")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def start(self) -> FakeBackend:
        self.spawn()
        if wait_until(lambda: _get_ok(f"{self.url}/fake/stats"), 60, 0.05) is None:
            self.stop()
            raise SystemExit(f"the fake OpenAI backend did not start:\n{self.log_tail()}")
        return self

    def fault(self, mode: str, times: int = 1) -> None:
        httpx.post(f"{self.url}/fake/faults", json={"mode": mode, "times": times}, timeout=5).raise_for_status()

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = httpx.get(f"{self.url}/fake/stats", timeout=5).json()
        return stats

    def reset(self) -> None:
        httpx.post(f"{self.url}/fake/reset", timeout=5).raise_for_status()


def _redis_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer(Child):
    """redis-server with an fsync-always append-only file: a write Redis acknowledged survives
    a restart (and a SIGKILL) of Redis itself."""

    def __init__(self, scratch: Path) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            raise SystemExit("redis-server is not on PATH: run scripts/install-test-servers.sh")
        self.port = free_port()
        self.workdir = scratch / "redis"
        self.workdir.mkdir(parents=True, exist_ok=True)
        command = [executable, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.workdir)]
        command += ["--save", "", "--appendonly", "yes", "--appendfsync", "always"]
        super().__init__("redis", command, scratch / "redis.log")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.spawn()
        if wait_until(lambda: _redis_ping(self.port), 30, 0.05) is None:
            self.stop()
            raise SystemExit(f"redis-server did not answer PING:\n{self.log_tail()}")
        return self


class PostgresServer:
    """Postgres 16 with pgvector from the pgserver wheel, on a Unix socket; `crash()` stops it
    the way a crash would (pg_ctl -m immediate: no checkpoint, WAL replay at the next start)."""

    def __init__(self) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
            from pgserver.postgres_server import get_server
        # Outside pytest's temp folders: as root, pgserver runs Postgres as a system user that
        # must reach its data folder.
        self.pgdata = Path(tempfile.mkdtemp(prefix="prove-pg-"))
        self.server: Any = get_server(self.pgdata, cleanup_mode="delete")
        self.uri: str = self.server.get_uri()

    def _pg_ctl(self, *args: str) -> None:
        from pgserver import _commands

        pg_ctl: Any = getattr(_commands, "pg_ctl")  # noqa: B009 - made at import time, invisible to mypy
        pg_ctl(list(args), pgdata=self.pgdata, user=self.server.system_user)

    def crash(self) -> None:
        self._pg_ctl("-m", "immediate", "-w", "stop")

    def start(self) -> None:
        with self.server._lock:
            self.server.ensure_postgres_running()

    def close(self) -> None:
        try:
            self.server.cleanup()
        finally:
            shutil.rmtree(self.pgdata, ignore_errors=True)


@contextmanager
def scratch_dir(prefix: str, keep: bool = False) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        if keep:
            print(f"(scratch kept: {path})")
        else:
            shutil.rmtree(path, ignore_errors=True)


@contextmanager
def running(*children: Child) -> Iterator[None]:
    """Stop the children, last started first, however the block ends."""
    try:
        yield
    finally:
        for child in reversed(children):
            child.stop()


# --- the server launcher -----------------------------------------------------------------------


def install_test_providers() -> None:
    from llama_stack.distribution.provider import Api
    from llama_stack.distribution.registry import install_provider, provider_registry
    from tests.providers.safety.stacks import install_safety_providers
    from tests.scripted import SCRIPTED_SPEC

    install_provider(SCRIPTED_SPEC)
    install_safety_providers()
    if (Api.agents, "inline::meta-reference") not in provider_registry():
        from llama_stack.providers.agents.reference import provider_spec

        install_provider(provider_spec)


def serve_main(argv: list[str]) -> None:
    import logging

    from llama_stack.distribution.spec import load_run_config
    from llama_stack.server.run import serve

    parser = argparse.ArgumentParser(prog="python -m scripts.prove_common serve")
    parser.add_argument("run_yaml", type=Path)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    install_test_providers()
    config = load_run_config(args.run_yaml, dict(os.environ))
    asyncio.run(serve(config, host="127.0.0.1", port=args.port))  # SIGTERM: a graceful stop


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        serve_main(sys.argv[2:])
    else:
        raise SystemExit(__doc__)
