"""The Dockerfile `llama stack build --image-type container` writes for every shipped distribution:
hadolint finds nothing at any level, the image is slim and runs as a non-root user, installs only
that distribution's extras, and its HEALTHCHECK command really tells a live server from a dead one."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from llama_stack.cli import build as builder
from llama_stack.distribution.templates import get_template, template_names
from tests.deploy.dockerfiles import hadolint, write_context
from tests.live import live_server

DISTRIBUTIONS = template_names()
NEEDS_TORCH = {"demo", "local", "ollama", "vllm", "tgi"}  # transformers or sentence-transformers


def test_every_shipped_distribution_is_checked() -> None:
    assert set(DISTRIBUTIONS) >= {
        "demo", "local", "ollama", "vllm", "tgi", "together", "fireworks", "databricks", "bedrock",
    }  # fmt: skip


def reasons_are_given(dockerfile: str) -> None:
    """Every `# hadolint ignore=` pragma sits under a comment that says why."""
    lines = dockerfile.splitlines()
    for index, line in enumerate(lines):
        if line.startswith("# hadolint ignore="):
            above = lines[index - 1] if index else ""
            assert above.startswith("# ") and "hadolint" not in above, f"no reason above: {line}"


@pytest.mark.parametrize("name", DISTRIBUTIONS)
def test_the_dockerfile_from_a_checkout_passes_hadolint(name: str, tmp_path: Path) -> None:
    context = write_context(tmp_path, "--template", name)
    dockerfile = context / "Dockerfile"
    assert hadolint(dockerfile) == []
    reasons_are_given(dockerfile.read_text())


@pytest.mark.parametrize("name", DISTRIBUTIONS)
def test_the_dockerfile_from_the_package_index_passes_hadolint(name: str, tmp_path: Path) -> None:
    """Where the CLI runs from an installed wheel, the image installs `llamastack-lite==VERSION`."""
    plan = builder.plan_build(get_template(name).build_spec(), {"torch", "embeddings"})
    text = builder.dockerfile(plan, builder.PackageSource(None, "0.1.0"))
    assert "llamastack-lite" in text and "==0.1.0" in text
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(text)
    assert hadolint(dockerfile) == []
    reasons_are_given(text)


def pip_install_lines(dockerfile: str) -> list[str]:
    return [line for line in dockerfile.splitlines() if line.startswith("RUN pip install")]


@pytest.mark.parametrize("name", DISTRIBUTIONS)
def test_slim_non_root_only_its_extras_and_a_health_check(name: str, tmp_path: Path) -> None:
    text = (write_context(tmp_path, "--template", name) / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.\d+-slim$", text, re.MULTILINE)
    users = re.findall(r"^USER (\S+)$", text, re.MULTILINE)
    assert users == ["1000:1000"], "the image must end as a numeric non-root user"
    assert "HEALTHCHECK" in text and "/alpha/health" in text
    assert 'ENTRYPOINT ["llama", "stack", "run", "/app/run.yaml"]' in text

    plan = builder.plan_build(get_template(name).build_spec(), builder.extras_needing_torch(builder.package_source()))
    installs = pip_install_lines(text)
    app_install = installs[-1]
    extras = re.search(r"llamastack-lite(?:\[(?P<extras>[^\]]*)\])?", app_install)
    assert extras is not None
    assert tuple((extras["extras"] or "").split(",") if extras["extras"] else ()) == plan.extras
    torch_installs = [line for line in installs if "torch==" in line]
    if name in NEEDS_TORCH:
        assert torch_installs == ["RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"]
    else:
        assert torch_installs == [] and "torch" not in text


def test_a_remote_distribution_installs_no_extra_but_its_own() -> None:
    bedrock = builder.plan_build(get_template("bedrock").build_spec(), {"torch", "embeddings"})
    together = builder.plan_build(get_template("together").build_spec(), {"torch", "embeddings"})
    assert (bedrock.extras, together.extras) == (("bedrock",), ())


def test_hadolint_reports_what_the_generator_avoids(tmp_path: Path) -> None:
    """The linter really lints: a named user, pip's cache and an unpinned package are findings."""
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM python:3.11-slim\nRUN pip install requests\nUSER llama\n")
    codes = {finding.code for finding in hadolint(dockerfile)}
    assert {"DL3013", "DL3042", "DL3066"} <= codes


# -- the health check command -----------------------------------------------------------------


def health_command(dockerfile: str) -> list[str]:
    match = re.search(r"^HEALTHCHECK .*\\\n\s+CMD (?P<cmd>\[.*\])$", dockerfile, re.MULTILINE)
    assert match is not None, "HEALTHCHECK ... CMD [...] in exec form"
    command: list[str] = json.loads(match["cmd"])
    return command


def run_health_check(command: list[str], port: int) -> subprocess.CompletedProcess[str]:
    assert command[0] == "python"
    return subprocess.run(
        [sys.executable, *command[1:]],
        env={"LLAMA_STACK_PORT": str(port)},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_the_health_check_passes_on_a_live_server_and_fails_on_a_dead_port(tmp_path: Path) -> None:
    command = health_command((write_context(tmp_path, "--template", "together") / "Dockerfile").read_text())
    config: dict[str, Any] = {
        "version": 2,
        "image_name": "health",
        "providers": {"inference": [{"provider_id": "scripted", "provider_type": "test::scripted"}]},
        "metadata_store": {"type": "sqlite", "db_path": str(tmp_path / "registry.db")},
    }
    with live_server(config) as live:
        port = int(live.base_url.rsplit(":", 1)[1])
        healthy = run_health_check(command, port)
        assert healthy.returncode == 0, healthy.stderr
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead_port = sock.getsockname()[1]
    dead = run_health_check(command, dead_port)
    assert dead.returncode != 0 and "Connection refused" in dead.stderr
