"""The Dockerfile `llama stack build --image-type container` writes for every shipped distribution:
hadolint finds nothing at any level; the base is a build argument; the image runs as a non-root
user, installs only from its wheelhouse (torch's CPU build in a layer of its own, only where a
provider needs it); and its HEALTHCHECK command really tells a live server from a dead one."""

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
from llama_stack.cli import wheelhouse
from llama_stack.distribution.templates import get_template, template_names
from tests.deploy.dockerfiles import hadolint, write_dockerfile
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


def dockerfile_of(name: str, tmp_path: Path) -> tuple[Path, builder.BuildPlan]:
    template = get_template(name)
    return write_dockerfile(tmp_path, template.build_yaml, template.run_yaml)


@pytest.mark.parametrize("name", DISTRIBUTIONS)
def test_the_dockerfile_passes_hadolint(name: str, tmp_path: Path) -> None:
    dockerfile, _ = dockerfile_of(name, tmp_path)
    assert hadolint(dockerfile) == []
    reasons_are_given(dockerfile.read_text())


@pytest.mark.parametrize("name", DISTRIBUTIONS)
def test_non_root_from_its_wheelhouse_only_with_a_health_check(name: str, tmp_path: Path) -> None:
    path, plan = dockerfile_of(name, tmp_path)
    text = path.read_text()
    assert "ARG BASE_IMAGE=python:3.11-slim\nFROM ${BASE_IMAGE}\n" in text
    users = re.findall(r"^USER (\S+)$", text, re.MULTILINE)
    assert users == ["1000:1000"], "the image must end as a numeric non-root user"
    assert "HEALTHCHECK" in text and "/alpha/health" in text
    assert 'ENTRYPOINT ["llama", "stack", "run", "/app/run.yaml"]' in text
    installs = [line for line in text.splitlines() if "pip install" in line]
    assert installs and all("pip install --no-index" in line for line in installs)
    assert "index-url" not in text and "http" not in text.replace("http://127.0.0.1:", "")
    mounted = re.findall(r"^RUN --mount=type=bind,source=wheels/?(\w*),", text, re.MULTILINE)
    torch = ["torch"] if name in NEEDS_TORCH else []
    semgrep = ["semgrep"] if plan.needs_semgrep else []
    assert mounted == [*torch, "deps", *semgrep, ""]
    # Each folder's hashes are copied before the layer that installs it: the layer's cache key.
    for folder in filter(None, mounted):
        assert text.index(f"COPY wheels/{folder}/SHA256SUMS") < text.index(f"source=wheels/{folder},")
    assert plan.needs_torch == (name in NEEDS_TORCH)


def test_the_app_requirement_names_exactly_the_extras() -> None:
    """The wheelhouse resolves this package with the distribution's extras, from a checkout's
    wheel or from the index alike; only a torch plan has a torch folder, asking PyTorch's index."""
    for name in DISTRIBUTIONS:
        template = get_template(name)
        plan = builder.with_store_extras(
            builder.plan_build(template.build_spec(), builder.extras_needing_torch(builder.package_source())),
            template.run_yaml,
        )
        own = builder.PackageSource(None, "0.1.0").requirement(plan.extras)
        sets = {s.folder: s for s in builder.wheel_sets(plan, own)}
        assert sets["app"].requirements[0] == own
        extras = re.search(r"llamastack-lite(?:\[(?P<extras>[^\]]*)\])?==0\.1\.0", own)
        assert extras is not None and tuple(filter(None, (extras["extras"] or "").split(","))) == plan.extras
        assert ("torch" in sets) == (name in NEEDS_TORCH)
        if "torch" in sets:
            assert sets["torch"].requirements == (wheelhouse.TORCH_CPU_REQUIREMENT,)


def test_a_remote_distribution_installs_no_extra_but_its_own() -> None:
    bedrock = builder.plan_build(get_template("bedrock").build_spec(), {"torch", "embeddings"})
    together = builder.plan_build(get_template("together").build_spec(), {"torch", "embeddings"})
    assert (bedrock.extras[:1], "torch" in together.extras) == (("bedrock",), False)


def test_a_codeshield_plan_gets_semgrep_in_a_venv_of_its_own(tmp_path: Path) -> None:
    """semgrep 1.100.0 in /opt/semgrep, codeshield without its dependencies in the server's venv,
    and the osemgrep link CodeShield would otherwise make at startup (as a user who cannot)."""
    plan = builder.BuildPlan("shielded", (), (), False, ("codeshield>=1.0.1",), needs_semgrep=True)
    sets = {s.folder: s for s in builder.wheel_sets(plan, "llamastack-lite==0.1.0")}
    assert sets["semgrep"].requirements == ("semgrep==1.100.0",)
    assert sets["app"].no_deps == ("codeshield>=1.0.1",)
    text = builder.dockerfile(plan)
    assert "ln -s semgrep-core /opt/semgrep/core/osemgrep" in text
    assert "PATH=/opt/llamastack/bin:/opt/semgrep/core:$PATH" in text
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(text)
    assert hadolint(dockerfile) == []


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
    command = health_command(dockerfile_of("together", tmp_path)[0].read_text())
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
