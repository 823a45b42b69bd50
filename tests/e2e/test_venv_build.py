"""`llama stack build --image-type venv` for real: a fresh venv with this package installed by pip.

The distribution has no providers with heavy extras, so the build must not install torch, and
the venv's own `llama` must work.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def test_venv_build_of_a_light_distribution(tmp_path: Path) -> None:
    config_dir = tmp_path / "light"
    config_dir.mkdir()
    build_yaml = config_dir / "build.yaml"
    build_yaml.write_text(
        textwrap.dedent(
            """\
            version: 2
            name: light
            distribution_spec:
              description: no providers, so nothing heavy to install
              providers: {}
            """
        )
    )
    (config_dir / "run.yaml").write_text("version: 2\nimage_name: light\nproviders: {}\n")
    venv = tmp_path / "venv"

    command = ["stack", "build", "--config", str(build_yaml), "--image-type", "venv", "--output-dir", str(venv)]
    build = subprocess.run(
        [sys.executable, "-m", "llama_stack.cli.main", *command],
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    assert "Successfully installed" in build.stdout  # pip's own output streams through
    assert f"{venv}/bin/llama stack run {venv}/run.yaml" in build.stdout
    assert (venv / "run.yaml").read_text() == (config_dir / "run.yaml").read_text()

    apis = subprocess.run(
        [str(venv / "bin" / "llama"), "stack", "list-apis"], capture_output=True, text=True, timeout=60
    )
    assert apis.returncode == 0, apis.stderr
    assert [line.split()[0] for line in apis.stdout.splitlines()] == ["inference", "safety", "memory", "agents"]

    torch = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import importlib.util as u; print(u.find_spec('torch') is None)"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert torch.stdout.strip() == "True", "a distribution without torch providers must not install torch"
