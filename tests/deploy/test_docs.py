"""The examples of docs/getting-started.md, deployment.md, distributions.md and providers.md run as
a reader would run them: shell blocks in bash from a scratch folder, curl and Python blocks
against a live `llama stack run demo`. A block that cannot run here carries, just above it,
`<!-- not run: REASON -->`; the generated pages equal what their scripts generate now."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from scripts import gen_distribution_docs, gen_provider_docs
from tests.deploy.dockerfiles import no_engine_path, users_package_settings
from tests.deploy.stack_files import DEPLOY, ROOT
from tests.servers import free_port

DOCS = ROOT / "docs"
PAGES = ("getting-started.md", "deployment.md", "distributions.md", "providers.md")
FENCE = re.compile(r"^```(?P<lang>\w*)\n(?P<code>.*?)^```\n(?:\s*```text\n(?P<output>.*?)^```\n)?", re.M | re.S)
NOT_RUN = re.compile(r"<!-- not run: (?P<reason>[^>]+?) -->\n$")
SERVED = "localhost:5000"
BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Block:
    page: str
    line: int
    lang: str
    code: str
    output: str | None
    not_run: str | None

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


def blocks() -> list[Block]:
    found = []
    for page in PAGES:
        text = (DOCS / page).read_text()
        for match in FENCE.finditer(text):
            before = text[: match.start()]
            reason = NOT_RUN.search(before)
            found.append(
                Block(
                    page,
                    before.count("\n") + 1,
                    match["lang"],
                    match["code"],
                    match["output"],
                    reason["reason"] if reason else None,
                )
            )
    return found


BLOCKS = blocks()
SHELL = [b for b in BLOCKS if b.lang == "bash" and b.not_run is None and SERVED not in b.code]
AGAINST_SERVER = [b for b in BLOCKS if b.lang in ("bash", "python") and b.not_run is None and b not in SHELL]


def test_every_example_runs_or_says_why_not() -> None:
    assert {b.lang for b in BLOCKS} <= {"bash", "python", "text"}, "a block of another language is not checked"
    for block in BLOCKS:
        if block.lang == "text":
            continue
        assert block.not_run is None or len(block.not_run) > 20, f"{block.id}: give the reason"
    assert len(SHELL) >= 4 and len(AGAINST_SERVER) >= 3
    for page in ("getting-started.md", "deployment.md"):
        assert any(b.page == page for b in SHELL), f"{page} has no example that runs"


def test_deployment_says_what_was_not_run() -> None:
    text = (DOCS / "deployment.md").read_text()
    section = text.split("## What was not run here", 1)[1]
    for fact in ("The vLLM compose stack was not started", "No cluster", "No image was pushed"):
        assert fact in section


# -- shell examples ---------------------------------------------------------------------------


@pytest.mark.parametrize("block", SHELL, ids=[b.id for b in SHELL])
def test_shell_example_runs(block: Block, tmp_path: Path) -> None:
    shutil.copytree(DEPLOY, tmp_path / "deploy")  # the examples' relative paths, as from a checkout
    home = tmp_path / "home"
    home.mkdir()
    env = {
        "PATH": os.pathsep.join([str(BIN), no_engine_path(tmp_path), "/usr/bin", "/bin"]),
        "HOME": str(home),
        "COLUMNS": "200",
        **users_package_settings(),  # the container build fetches its wheels as the user does
    }
    completed = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block.code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, f"{block.id}\n{completed.stdout[-2000:]}\n{completed.stderr[-2000:]}"
    if block.output is not None:
        assert completed.stdout == block.output


def test_the_container_example_writes_a_context_that_lints_clean(tmp_path: Path) -> None:
    """deployment.md's container block, looked at after it ran: the files it says it writes."""
    block = next(b for b in SHELL if "--template demo --image-type container" in b.code)
    test_shell_example_runs(block, tmp_path)
    context = tmp_path / "demo-image"
    assert {"Dockerfile", "run.yaml", "wheels"} <= {p.name for p in context.iterdir()}


# -- examples against a live demo server ------------------------------------------------------


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    state = tmp_path_factory.mktemp("demo-docs")
    port = free_port()
    env = {**os.environ, "SQLITE_STORE_DIR": str(state), "HF_HUB_OFFLINE": "1"}
    env.setdefault("LLAMA_TINY_MODEL_DIR", str(tmp_path_factory.getbasetemp() / "tiny-models"))
    process = subprocess.Popen(
        [str(BIN / "llama"), "stack", "run", "demo", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    address = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        if process.poll() is not None:
            raise AssertionError(f"the demo server exited:\n{process.stdout.read() if process.stdout else ''}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"http://{address}/alpha/health", timeout=1).status_code == 200:
                break
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError("the demo server was not healthy within 180 s")
        time.sleep(0.2)
    yield address
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)


@pytest.mark.parametrize("block", AGAINST_SERVER, ids=[b.id for b in AGAINST_SERVER])
def test_example_against_the_demo_server(block: Block, demo_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if block.lang == "python":
        monkeypatch.setenv("LLAMA_STACK_BASE_URL", f"http://{demo_server}")
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile("\n" * block.line + block.code, block.id, "exec"), {"__name__": "__main__"})
        if block.output is not None:
            assert printed.getvalue() == block.output
        return
    # Every curl must succeed (-f) and print one JSON reply (a line each, with -w).
    code = block.code.replace(SERVED, demo_server).replace("curl -s ", "curl -sf -w '\\n' ")
    completed = subprocess.run(["bash", "-euo", "pipefail", "-c", code], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, f"{block.id}: {completed.stderr}"
    # Split on newlines only: a sampled token may hold U+2028 or a C1 control character, which
    # str.splitlines and YAML treat as special but JSON carries unescaped.
    replies = [line for line in completed.stdout.split("\n") if line.strip()]
    assert len(replies) == code.count("curl ")
    for reply in replies:
        assert json.loads(reply), reply  # each reply is JSON and not empty


# -- generated pages --------------------------------------------------------------------------


def test_providers_page_is_generated_from_the_provider_specs() -> None:
    assert (DOCS / "providers.md").read_text() == gen_provider_docs.render(), (
        "docs/providers.md is stale: run python -m scripts.gen_provider_docs"
    )


def test_the_generators_check_mode_agrees() -> None:
    for module in ("scripts.gen_provider_docs", "scripts.gen_distribution_docs"):
        completed = subprocess.run(
            [sys.executable, "-m", module, "--check"], capture_output=True, text=True, timeout=60, cwd=ROOT
        )
        assert completed.returncode == 0, completed.stderr
    assert gen_distribution_docs.DOC == DOCS / "distributions.md"


def test_providers_page_documents_every_shipped_provider_and_its_fields() -> None:
    text = (DOCS / "providers.md").read_text()
    for spec in gen_provider_docs.shipped_specs():
        assert f"### `{spec.provider_type}`" in text
        for field in spec.config_class.model_fields:
            assert f"`{field}" in text or f".{field}`" in text, f"{spec.provider_type}: {field}"
    assert "| `dsn` | str | **required** |" in text  # pgvector's and Postgres' required DSN
