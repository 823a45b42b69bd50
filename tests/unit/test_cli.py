"""The `llama` CLI as a user sees it: what each command prints, and one-line errors with exit 1."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from llama_stack.cli import build as builder
from llama_stack.cli.main import app
from llama_stack.distribution.spec import load_build_spec
from llama_stack.distribution.templates import get_template
from tests.deploy.dockerfiles import users_package_settings

WIDE = {"COLUMNS": "200"}  # rich tables would wrap long names at the default 80 columns


def llama(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(app, list(args), env={**WIDE, **(env or {})})


def assert_one_line_error(result: Result, *fragments: str) -> None:
    assert result.exit_code == 1, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0]


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


# -- help -------------------------------------------------------------------------------------


def test_help_is_light_and_never_imports_torch() -> None:
    script = textwrap.dedent(
        """
        import sys, time
        started = time.perf_counter()
        from typer.testing import CliRunner
        from llama_stack.cli.main import app
        for args in (["--help"], ["stack", "--help"], ["model", "--help"]):
            result = CliRunner().invoke(app, args)
            assert result.exit_code == 0, result.output
        heavy = sorted(m for m in ("torch", "transformers", "sentence_transformers") if m in sys.modules)
        print(heavy, round(time.perf_counter() - started, 2))
        """
    )
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert completed.returncode == 0, completed.stderr
    heavy, seconds = completed.stdout.rsplit(" ", 1)
    assert heavy == "[]"
    assert float(seconds) < 10


def test_stack_help_lists_the_commands() -> None:
    result = llama("stack", "--help")
    assert result.exit_code == 0
    for command in ("list-apis", "list-providers", "list-distributions", "build", "run"):
        assert command in result.output


# -- listing ----------------------------------------------------------------------------------


def test_list_apis_lists_the_four_apis() -> None:
    result = llama("stack", "list-apis")
    assert result.exit_code == 0
    assert [line.split()[0] for line in result.stdout.splitlines()] == ["inference", "safety", "memory", "agents"]


def test_list_providers_shows_the_local_inference_providers() -> None:
    result = llama("stack", "list-providers", "inference")
    assert result.exit_code == 0, result.output
    assert "inline::transformers" in result.stdout
    assert "inline::sentence-transformers" in result.stdout
    assert "pip install 'llamastack-lite[torch]'" in result.stdout
    assert "pip install 'llamastack-lite[embeddings]'" in result.stdout
    assert "inline::transformers" in llama("stack", "list-providers").stdout


def test_list_providers_of_an_unknown_api_is_one_line() -> None:
    assert_one_line_error(llama("stack", "list-providers", "bogus"), "bogus", "inference, safety, memory, agents")


def test_list_distributions_shows_demo_and_local() -> None:
    result = llama("stack", "list-distributions")
    assert result.exit_code == 0
    assert "demo" in result.stdout and "local" in result.stdout
    assert "LLAMA_STACK_PORT" not in result.stdout


def test_list_distributions_verbose_shows_env_vars_and_providers() -> None:
    result = llama("stack", "list-distributions", "--verbose")
    assert result.exit_code == 0
    assert re.search(r"^ +LLAMA_STACK_PORT +5000 +\[server\.port\]$", result.stdout, re.MULTILINE)
    assert "INFERENCE_MODEL" in result.stdout
    assert "inference: inline::transformers, inline::sentence-transformers" in result.stdout


# -- run: user errors -------------------------------------------------------------------------

RUN_YAML = """\
    version: 2
    image_name: broken
    providers:
      inference:
        - provider_id: first
          provider_type: {provider_type}
    metadata_store:
      type: sqlite
      db_path: {db_path}
    server:
      port: {port}
    """


def run_yaml(tmp_path: Path, provider_type: str = "inline::transformers", port: str = "5000") -> Path:
    text = RUN_YAML.format(provider_type=provider_type, port=port, db_path=tmp_path / "registry.db")
    return write(tmp_path / "run.yaml", text)


def test_run_with_an_unknown_provider_type_names_the_key(tmp_path: Path) -> None:
    path = run_yaml(tmp_path, provider_type="inline::bogus")
    assert_one_line_error(llama("stack", "run", str(path)), "providers.inference[0].provider_type", "inline::bogus")


def test_run_with_a_bad_value_names_the_key(tmp_path: Path) -> None:
    path = run_yaml(tmp_path, port='"abc"')
    assert_one_line_error(llama("stack", "run", str(path)), "server.port")


def test_run_with_a_missing_file_or_unknown_name(tmp_path: Path) -> None:
    assert_one_line_error(llama("stack", "run", str(tmp_path / "absent.yaml")), "file not found")
    assert_one_line_error(llama("stack", "run", "nope"), "unknown distribution 'nope'", "demo")


def test_run_env_needs_name_equals_value(tmp_path: Path) -> None:
    assert_one_line_error(llama("stack", "run", str(run_yaml(tmp_path)), "--env", "PORT"), "--env 'PORT'")


def test_run_env_values_fill_the_run_yaml(tmp_path: Path) -> None:
    path = run_yaml(tmp_path, port="${env.MY_PORT}")
    assert_one_line_error(llama("stack", "run", str(path)), "server.port", "MY_PORT is not set")
    assert_one_line_error(llama("stack", "run", str(path), "--env", "MY_PORT=abc"), "server.port")


# -- build ------------------------------------------------------------------------------------


@pytest.fixture
def no_container_engine(tmp_path: Path) -> dict[str, str]:
    """A PATH whose only engine is a docker client with no daemon behind it, like this machine."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    docker = bin_dir / "docker"
    docker.write_text("#!/bin/sh\necho 'Cannot connect to the Docker daemon' >&2\nexit 1\n")
    docker.chmod(0o755)
    return {"PATH": str(bin_dir)}


def test_container_build_writes_a_dockerfile_without_an_engine(
    tmp_path: Path, no_container_engine: dict[str, str]
) -> None:
    """The build context: a Dockerfile installing only from the wheelhouse fetched here (together:
    no torch, so the wheelhouse is small; tests/deploy/test_images.py builds the demo's for real)."""
    out = tmp_path / "image"
    result = llama(
        "stack", "build", "--template", "together", "--image-type", "container", "--output-dir", str(out),
        env={**no_container_engine, **users_package_settings()},  # HOME is a fresh folder in tests
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "No container engine is available" in result.stdout
    assert str(out / "Dockerfile") in result.stdout
    assert "docker build -t llamastack-together" in result.stdout
    dockerfile = (out / "Dockerfile").read_text()
    for expected in ("ARG BASE_IMAGE=python:3.11-slim", "USER 1000:1000", "HEALTHCHECK", "/alpha/health", "urllib"):
        assert expected in dockerfile
    assert "pip install --no-index" in dockerfile and "torch" not in dockerfile
    assert 'ENTRYPOINT ["llama", "stack", "run", "/app/run.yaml"]' in dockerfile
    assert (out / "run.yaml").read_text() == get_template("together").run_yaml.read_text()
    # From a checkout, the image installs this source as a wheel built here, and its dependencies.
    assert [w.name for w in (out / "wheels" / "app").glob("*.whl")] == ["llamastack_lite-0.1.0-py3-none-any.whl"]
    assert "fastapi==" in (out / "wheels" / "deps" / "pins.txt").read_text()


def test_build_needs_exactly_one_of_template_or_config() -> None:
    assert_one_line_error(llama("stack", "build"), "--template", "--config")


def test_build_with_an_unknown_provider_names_the_key(tmp_path: Path) -> None:
    build_yaml = write(
        tmp_path / "build.yaml",
        """\
        version: 2
        name: odd
        distribution_spec:
          providers:
            inference: [inline::bogus]
        """,
    )
    result = llama("stack", "build", "--config", str(build_yaml), "--output-dir", str(tmp_path / "venv"))
    assert_one_line_error(result, "distribution_spec.providers.inference[0]", "inline::bogus")
    assert not (tmp_path / "venv").exists()


def test_demo_venv_plan_installs_cpu_torch_first_then_its_extras() -> None:
    spec = load_build_spec(get_template("demo").build_yaml)
    source = builder.package_source()
    plan = builder.plan_build(spec, builder.extras_needing_torch(source))
    assert plan.extras == ("torch", "embeddings", "multilingual-embeddings", "faiss") and plan.needs_torch

    commands = builder.venv_pip_commands(plan, Path("/envs/demo/bin/python"), source)
    assert commands[0] == ["/envs/demo/bin/python", "-m", "pip", "install", "torch==2.13.0"]
    assert commands[1][-1] == f"{source.root}[torch,embeddings,multilingual-embeddings,faiss]"
    requirement = builder.PackageSource(None, "0.1.0").requirement(plan.extras)
    assert requirement == "llamastack-lite[torch,embeddings,multilingual-embeddings,faiss]==0.1.0"


def test_venv_build_creates_installs_and_copies_the_run_yaml(tmp_path: Path) -> None:
    ran: list[list[str]] = []

    def record(command: Sequence[str]) -> None:
        ran.append(list(command))

    plan = builder.BuildPlan("demo", ("torch",), (), needs_torch=True)
    source = builder.PackageSource(Path("/src/llamastack"), "0.1.0")
    venv = tmp_path / "venv"
    result = builder.build_venv(plan, venv, source, get_template("demo").run_yaml, run=record)
    assert ran[0] == [sys.executable, "-m", "venv", str(venv)]
    assert [c[-1] for c in ran[1:]] == ["torch==2.13.0", "/src/llamastack[torch]"]
    assert result.run_yaml == venv / "run.yaml" and result.run_yaml.is_file()
    assert result.run_command == f"{venv}/bin/llama stack run {venv}/run.yaml"


def test_a_plan_without_torch_providers_installs_no_torch() -> None:
    plan = builder.BuildPlan("light", (), (), needs_torch=False)
    commands = builder.venv_pip_commands(plan, Path("python"), builder.PackageSource(None, "0.1.0"))
    assert commands == [["python", "-m", "pip", "install", "llamastack-lite==0.1.0"]]
    assert "torch" not in builder.dockerfile(plan)


def test_a_failing_command_is_a_one_line_error(tmp_path: Path) -> None:
    plan = builder.BuildPlan("demo", (), (), needs_torch=False)
    failing = tmp_path / "venv" / "bin" / "python"
    failing.parent.mkdir(parents=True)
    failing.write_text("#!/bin/sh\necho 'ERROR: No matching distribution' >&2\nexit 1\n")
    failing.chmod(0o755)
    with pytest.raises(builder.UserError, match=r"exit status 1: .*pip install"):
        builder.build_venv(plan, tmp_path / "venv", builder.PackageSource(None, "0.1.0"), None)


# -- models -----------------------------------------------------------------------------------


def test_model_list_shows_the_recommended_models(tmp_path: Path) -> None:
    result = llama("model", "list", env={"HF_HUB_CACHE": str(tmp_path)})
    assert result.exit_code == 0, result.output
    for expected in ("Llama3.2-1B-Instruct", "Llama-Guard-3-1B", "meta-llama/Llama-3.2-1B-Instruct", "128K"):
        assert expected in result.stdout
    assert "Llama-2-7b" not in result.stdout
    every = llama("model", "list", "--show-all", env={"HF_HUB_CACHE": str(tmp_path)})
    assert "Llama-2-7b" in every.stdout
    assert len(every.stdout.splitlines()) > len(result.stdout.splitlines())


def test_model_list_says_which_checkpoints_are_in_the_hf_cache(tmp_path: Path) -> None:
    repo = tmp_path / "models--meta-llama--Llama-3.2-1B-Instruct"
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    (repo / "snapshots" / "abc123" / "config.json").write_text("{}")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    result = llama("model", "list", env={"HF_HUB_CACHE": str(tmp_path)})
    local = {
        line.split("│")[1].strip(): line.split("│")[4].strip() for line in result.stdout.splitlines() if "│" in line
    }
    assert local["Llama3.2-1B-Instruct"] == "yes"
    assert local["Llama3.2-3B-Instruct"] == ""


def test_prompt_format_of_a_llama_3_2_model() -> None:
    result = llama("model", "prompt-format", "-m", "Llama3.2-1B-Instruct")
    assert result.exit_code == 0, result.output
    assert "<|begin_of_text|>" in result.stdout
    assert "<|start_header_id|>" in result.stdout


def test_prompt_format_of_an_unknown_model_says_how_to_list_them() -> None:
    assert_one_line_error(llama("model", "prompt-format", "-m", "Llama9-1B"), "Llama9-1B", "llama model list")
