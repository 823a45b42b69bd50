"""`llama stack build --image-type venv` for real: fresh venvs with this package installed by pip,
from a build.yaml of no providers and from a shipped distribution (bedrock: a provider extra of
its own, boto3, beside the OpenAI-compatible and memory providers every remote distribution has).

None of them has a provider with a heavy extra, so the build must not install torch; the venv's
own `llama` must work and, for the shipped ones, their providers must import and build there.
"""

from __future__ import annotations

import json
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


# -- shipped distributions --------------------------------------------------------------------

# Run with the venv's own python: every provider of the distribution imports (all modules of its
# package), its factory builds it from the run.yaml's config, and what is missing for the others.
PROVIDER_CHECK = textwrap.dedent(
    """\
    import asyncio, importlib, json, pkgutil, sys
    from llama_stack.distribution.provider import Deps
    from llama_stack.distribution.registry import get_provider_spec, provider_registry
    from llama_stack.distribution.spec import load_run_config, validate_section
    from llama_stack.distribution.templates import get_template

    async def check(name):
        providers = {}
        for api, entries in load_run_config(get_template(name).run_yaml, env={}).providers.items():
            for entry in entries:
                spec = get_provider_spec(api, entry.provider_type)
                package = importlib.import_module(spec.factory.__module__)
                modules = [m.name for m in pkgutil.iter_modules(package.__path__, package.__name__ + ".")]
                for module in modules:
                    importlib.import_module(module)
                config = validate_section(spec.config_class, entry.config, ())
                # Providers that call other APIs need a running stack (tests/e2e/test_every_distribution.py).
                impl = await spec.factory(config, Deps()) if not spec.depends_on else None
                providers.setdefault(entry.provider_type, {  # bedrock's safety shares its inference's type
                    "missing": spec.missing_modules(), "modules": modules, "impl": type(impl).__name__,
                })
        others = {s.provider_type: s.missing_modules() for s in provider_registry().values()}
        return {"providers": providers, "others_missing": others, "torch_loaded": "torch" in sys.modules}

    print(json.dumps(asyncio.run(check(sys.argv[1]))))
    """
)


def test_venv_build_of_a_shipped_distribution(tmp_path: Path) -> None:
    # One shipped distribution: each fresh venv costs ~50 s of pip here, and the other remote
    # distributions differ from bedrock only in providers the dev venv's e2e tier already serves.
    name, provider_type, implementation = "bedrock", "remote::bedrock", "BedrockInference"
    venv = tmp_path / name
    command = ["stack", "build", "--template", name, "--image-type", "venv", "--output-dir", str(venv)]
    build = subprocess.run(
        [sys.executable, "-m", "llama_stack.cli.main", *command], capture_output=True, text=True, timeout=540
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    assert f"{venv}/bin/llama stack run {venv}/run.yaml" in build.stdout

    listed = subprocess.run(
        [str(venv / "bin" / "llama"), "stack", "list-providers", "inference"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "200", "HOME": str(tmp_path)},
    )
    assert listed.returncode == 0, listed.stderr
    assert f"│ inference │ {provider_type} " in listed.stdout

    checked = subprocess.run(
        [str(venv / "bin" / "python"), "-c", PROVIDER_CHECK, name],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,  # not the checkout: the venv's installed copy must be what imports
    )
    assert checked.returncode == 0, checked.stderr[-3000:]
    report = json.loads(checked.stdout)
    provider = report["providers"][provider_type]
    assert provider["missing"] == [] and provider["impl"] == implementation
    assert any(module.endswith(".inference") for module in provider["modules"])
    # Only this distribution's extras: torch-backed providers stay uninstalled, and nothing loaded torch.
    assert "torch" in report["others_missing"]["inline::transformers"]
    assert not report["torch_loaded"]
    torch = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import importlib.util as u; print(u.find_spec('torch') is None)"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert torch.stdout.strip() == "True", f"the {name} distribution has no torch provider: torch must be absent"
