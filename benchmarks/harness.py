"""What the benchmarks share: servers in their own processes (a stack served by `llama stack run`,
the fake OpenAI backend), percentiles, and tables whose figures stand next to the baseline
measured in the same run.

A child's output goes to a temporary file, never to a pipe nobody reads (a full pipe would
stall a server that logs per request); when it dies during startup, its log is the error.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

MODEL = "meta-llama/Llama-3.2-3B-Instruct"  # the model the fake backend serves


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def pinned(core: int | None, command: list[str]) -> list[str]:
    """`command` on one CPU core when taskset exists and there is more than one core: the client
    and the server under test then do not take turns on the same core."""
    if core is None or shutil.which("taskset") is None or (os.cpu_count() or 1) < 2:
        return command
    return ["taskset", "-c", str(core), *command]


@dataclass
class Server:
    url: str
    pid: int
    startup_s: float  # from the spawn to the first healthy answer


@contextmanager
def serving(command: list[str], port: int, health_path: str, env: dict[str, str] | None = None) -> Iterator[Server]:
    """Runs `command` until the block ends; enters once http://127.0.0.1:`port``health_path` answers."""
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile("w+") as log:
        started = time.perf_counter()
        child = subprocess.Popen(
            command, env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL, stdout=log, stderr=log, text=True
        )
        try:
            while not _answers(f"{url}{health_path}"):
                if child.poll() is not None:
                    log.seek(0)
                    raise SystemExit(f"{' '.join(command)} exited:\n{log.read()[-4000:]}")
                if time.perf_counter() - started > 180:
                    raise SystemExit(f"{' '.join(command)} did not answer {health_path} within 180 s")
                time.sleep(0.05)
            yield Server(url, child.pid, time.perf_counter() - started)
        finally:
            child.terminate()
            try:
                child.wait(timeout=60)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code < 500
    except httpx.HTTPError:
        return False


@contextmanager
def fake_backend(core: int | None = None) -> Iterator[Server]:
    """The fake OpenAI-compatible server of the test suite (its own cost is far below a
    millisecond per request), run as a command: it stands for vLLM, TGI, Together..."""
    port = free_port()
    command = pinned(core, [sys.executable, "-m", "tests.fakes.openai_server", "--port", str(port)])
    with serving(command, port, "/fake/stats") as server:
        yield server


def llama() -> str:
    return str(Path(sys.executable).with_name("llama"))


@contextmanager
def stack(
    config: dict[str, Any] | str,
    core: int | None = None,
    env: dict[str, str] | None = None,
    profile: Path | None = None,
) -> Iterator[Server]:
    """`llama stack run` over a run config (a dict, written to a temporary run.yaml) or a
    distribution's name, as a user starts it; with `profile`, under cProfile, whose stats are
    written there when the server exits."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-stack-") as folder:
        if isinstance(config, dict):
            run_yaml = Path(folder) / "run.yaml"
            run_yaml.write_text(yaml.safe_dump(config, sort_keys=False))
            config = str(run_yaml)
        cli = [llama()]
        if profile is not None:
            cli = [sys.executable, "-m", "cProfile", "-o", str(profile.resolve()), "-m", "llama_stack.cli.main"]
        command = pinned(core, [*cli, "stack", "run", config, "--port", str(port)])
        with serving(command, port, "/alpha/health", env) as server:
            yield server


def remote_vllm_config(backend_url: str, state: Path, **provider: Any) -> dict[str, Any]:
    """A stack whose one inference provider is remote::vllm in front of `backend_url`."""
    return {
        "version": 2,
        "image_name": "bench",
        "providers": {
            "inference": [
                {
                    "provider_id": "vllm",
                    "provider_type": "remote::vllm",
                    "config": {"url": f"{backend_url}/v1", "max_retries": 0, **provider},
                }
            ]
        },
        "metadata_store": {"type": "sqlite", "db_path": str(state / "registry.db")},
        "models": [{"model_id": MODEL, "provider_id": "vllm", "provider_model_id": MODEL}],
    }


def rss_mb(pid: int) -> float:
    """Resident set size in MiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ratio(value: float, baseline: float) -> str:
    return f"{value / baseline:.2f}x" if baseline else "-"


def table(headers: list[str], rows: list[list[Any]]) -> str:
    """A plain-text table: the first column left-aligned, the figures right-aligned."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))

    return "\n".join([line(cells[0]), "  ".join("-" * w for w in widths), *map(line, cells[1:])])
