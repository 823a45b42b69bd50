"""`llama stack build`: what to install for a distribution, as a venv or as a container image.

The plan (extras, whether torch comes first, pip's commands, the Dockerfile's text) is made of
plain functions, so it is tested without running pip or a container engine. A container build
context holds a wheelhouse (cli/wheelhouse.py) that the Dockerfile installs from without network.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from llama_stack.distribution.registry import UnknownProvider, get_provider_spec
from llama_stack.distribution.spec import BuildSpec, ConfigError, parse_yaml_file

from . import wheelhouse
from .dockerfile import WHEELS_IN_CONTEXT, dockerfile
from .errors import UserError

DIST_NAME = "llamastack-lite"
# Installed before the extras: asking pip for torch through an extra pulls a CUDA build.
TORCH_REQUIREMENT = "torch==2.13.0"
CODESHIELD_PROVIDER = "inline::code-scanner"

Runner = Callable[[Sequence[str]], None]


@dataclass(frozen=True)
class PackageSource:
    """Where pip gets this package: the source checkout the CLI runs from, or the index."""

    root: Path | None
    version: str

    def requirement(self, extras: Sequence[str]) -> str:
        suffix = f"[{','.join(extras)}]" if extras else ""
        if self.root is not None:
            return f"{self.root}{suffix}"
        return f"{DIST_NAME}{suffix}=={self.version}"


@dataclass(frozen=True)
class BuildPlan:
    name: str
    extras: tuple[str, ...]
    pip_packages: tuple[str, ...]
    needs_torch: bool
    no_deps_packages: tuple[str, ...] = ()
    # CodeShield: codeshield in the server's venv (no deps), semgrep-core from a venv of its own.
    needs_semgrep: bool = False


def _project_table(pyproject: Path) -> dict[str, object]:
    try:
        data = tomllib.loads(pyproject.read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def find_source_root() -> Path | None:
    """The checkout holding pyproject.toml next to the imported llama_stack package, if any."""
    import llama_stack

    root = Path(llama_stack.__file__).resolve().parent.parent
    project = _project_table(root / "pyproject.toml").get("project")
    if isinstance(project, dict) and project.get("name") == DIST_NAME:
        return root
    return None


def package_source() -> PackageSource:
    try:
        version = metadata.version(DIST_NAME)
    except metadata.PackageNotFoundError:
        version = "0.0.0"
    return PackageSource(find_source_root(), version)


def _requirement_name(requirement: str) -> str:
    name = requirement.split(";")[0].strip()
    for stop in "[<>=!~ (":
        name = name.split(stop)[0]
    return name.strip().lower().replace("_", "-")


def extras_needing_torch(source: PackageSource) -> set[str]:
    """The extras of this package that pull torch, read from the checkout's pyproject.toml or
    from the installed package's metadata."""
    extras: set[str] = set()
    if source.root is not None:
        project = _project_table(source.root / "pyproject.toml").get("project")
        optional = project.get("optional-dependencies", {}) if isinstance(project, dict) else {}
        for extra, requirements in optional.items():
            if any(_requirement_name(r) == "torch" for r in requirements):
                extras.add(extra)
        return extras
    for requirement in metadata.requires(DIST_NAME) or []:
        marker = requirement.partition(";")[2]
        if _requirement_name(requirement) == "torch" and "extra ==" in marker:
            extras.add(marker.split("extra ==")[1].strip().strip("'\""))
    return extras


def plan_build(spec: BuildSpec, torch_extras: set[str]) -> BuildPlan:
    """The extras and packages the distribution's providers declare, deduplicated in order."""
    extras: dict[str, None] = {}
    packages: dict[str, None] = {}
    no_deps: dict[str, None] = {}
    needs_torch = needs_semgrep = False
    for api, provider_types in spec.distribution_spec.providers.items():
        for index, provider_type in enumerate(provider_types):
            try:
                provider = get_provider_spec(api, provider_type)
            except UnknownProvider as e:
                raise ConfigError(f"distribution_spec.providers.{api.value}[{index}]: {e}") from e
            if provider.extra:
                extras[provider.extra] = None
            packages.update(dict.fromkeys(provider.pip_packages))
            no_deps.update(dict.fromkeys(provider.no_deps_packages))
            if provider.provider_type == CODESHIELD_PROVIDER:
                needs_semgrep = True
                no_deps[wheelhouse.CODESHIELD_REQUIREMENT] = None
            needs_torch = needs_torch or (
                "torch" in provider.required_modules
                or provider.extra in torch_extras
                or any(_requirement_name(p) == "torch" for p in provider.pip_packages)
            )
    return BuildPlan(spec.name, tuple(extras), tuple(packages), needs_torch, tuple(no_deps), needs_semgrep)


# The kvstore backends a run.yaml may name (`type: ...` of a metadata_store, a persistence_store,
# a memory provider's kvstore), and the extra that installs each one's client.
STORE_EXTRAS = {"postgres": "postgres", "redis": "redis"}


def _store_types(value: object) -> list[str]:
    if isinstance(value, dict):
        own = [value["type"]] if isinstance(value.get("type"), str) else []
        return own + [found for child in value.values() for found in _store_types(child)]
    if isinstance(value, list):
        return [found for child in value for found in _store_types(child)]
    return []


def with_store_extras(plan: BuildPlan, run_yaml: Path | None) -> BuildPlan:
    """The plan plus the extras of the kvstores the run.yaml uses (Postgres, Redis): they are no
    provider's, so the build.yaml alone cannot name them."""
    if run_yaml is None:
        return plan
    extras = dict.fromkeys(plan.extras)
    for store in _store_types(parse_yaml_file(run_yaml)):
        if store in STORE_EXTRAS:
            extras[STORE_EXTRAS[store]] = None
    return dataclasses.replace(plan, extras=tuple(extras))


# -- venv -----------------------------------------------------------------------------------


def default_venv_dir(name: str) -> Path:
    return Path("~/.llama/envs").expanduser() / name


def venv_bin(venv_dir: Path) -> Path:
    return venv_dir / ("Scripts" if os.name == "nt" else "bin")


def venv_pip_commands(plan: BuildPlan, python: Path, source: PackageSource) -> list[list[str]]:
    pip = [str(python), "-m", "pip", "install"]
    commands = []
    if plan.needs_torch:
        commands.append([*pip, TORCH_REQUIREMENT])
    commands.append([*pip, source.requirement(plan.extras), *plan.pip_packages])
    if plan.no_deps_packages:
        commands.append([*pip, "--no-deps", *plan.no_deps_packages])
    return commands


def run_streaming(command: Sequence[str]) -> None:
    """Run a command with its output streaming to the terminal; a failure is a UserError."""
    try:
        completed = subprocess.run(list(command), check=False)
    except OSError as e:
        raise UserError(f"could not run {command[0]}: {e}") from e
    if completed.returncode != 0:
        raise UserError(f"command failed with exit status {completed.returncode}: {shlex.join(command)}")


@dataclass(frozen=True)
class VenvBuild:
    venv_dir: Path
    run_yaml: Path | None

    @property
    def run_command(self) -> str:
        llama = venv_bin(self.venv_dir) / "llama"
        target = shlex.quote(str(self.run_yaml)) if self.run_yaml else "PATH/TO/run.yaml"
        return f"{shlex.quote(str(llama))} stack run {target}"


def build_venv(
    plan: BuildPlan,
    venv_dir: Path,
    source: PackageSource,
    run_yaml: Path | None,
    run: Runner = run_streaming,
) -> VenvBuild:
    plan = with_store_extras(plan, run_yaml)
    python = venv_bin(venv_dir) / ("python.exe" if os.name == "nt" else "python")
    if not python.exists():
        run([sys.executable, "-m", "venv", str(venv_dir)])
    for command in venv_pip_commands(plan, python, source):
        run(command)
    copied = None
    if run_yaml is not None:
        copied = venv_dir / "run.yaml"
        venv_dir.mkdir(parents=True, exist_ok=True)
        if run_yaml.resolve() != copied.resolve():
            shutil.copyfile(run_yaml, copied)
    return VenvBuild(venv_dir, copied)


# -- container ------------------------------------------------------------------------------


def default_container_dir(name: str) -> Path:
    return Path("~/.llama/containers").expanduser() / name


def wheel_sets(plan: BuildPlan, own_requirement: str) -> list[wheelhouse.WheelSet]:
    sets = []
    if plan.needs_torch:
        sets.append(wheelhouse.WheelSet("torch", (wheelhouse.TORCH_CPU_REQUIREMENT,), index=wheelhouse.TORCH_CPU_INDEX))
    reuses = ("torch",) if plan.needs_torch else ()
    sets.append(wheelhouse.WheelSet("app", (own_requirement, *plan.pip_packages), plan.no_deps_packages, reuses))
    # semgrep last: it reuses nothing, and its pins must not meet the server's.
    if plan.needs_semgrep:
        sets.append(wheelhouse.WheelSet("semgrep", (wheelhouse.SEMGREP_REQUIREMENT,)))
    return sets


def _source_entries(root: Path) -> list[str]:
    """What a package build needs from the checkout: its metadata files and mapped folders."""
    data = _project_table(root / "pyproject.toml")
    tool = data.get("tool", {})
    setuptools = tool.get("setuptools", {}) if isinstance(tool, dict) else {}
    package_dir = setuptools.get("package-dir", {}) if isinstance(setuptools, dict) else {}
    folders = {Path(str(folder)).parts[0] for folder in package_dir.values()} | {"llama_stack"}
    files = ["pyproject.toml", "setup.py", "setup.cfg", "MANIFEST.in", "README.md", "LICENSE"]
    return [name for name in [*files, *sorted(folders)] if (root / name).exists()]


def copy_source(root: Path, destination: Path) -> None:
    if destination.exists():
        shutil.rmtree(destination)
    destination.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", ".mypy_cache", ".pytest_cache")
    for name in _source_entries(root):
        if (root / name).is_dir():
            shutil.copytree(root / name, destination / name, ignore=ignore)
        else:
            shutil.copyfile(root / name, destination / name)


def write_container_context(
    plan: BuildPlan,
    out_dir: Path,
    source: PackageSource,
    run_yaml: Path,
    run: Runner = run_streaming,
    cache_dir: Path | None = None,
) -> Path:
    """Write the build context: the Dockerfile, the run.yaml and the wheelhouse of every package
    the image installs (this package's own wheel built from the checkout, when run from one)."""
    plan = with_store_extras(plan, run_yaml)
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(run_yaml, out_dir / "run.yaml")
    wheels = out_dir / WHEELS_IN_CONTEXT
    if wheels.exists():
        shutil.rmtree(wheels)  # a wheel of an earlier build must not be picked again
    (wheels / "app").mkdir(parents=True)
    if source.root is not None:
        wheelhouse.build_own_wheel(source.root, wheels / "app", copy_source, run)
        own = PackageSource(None, source.version).requirement(plan.extras)
    else:
        own = source.requirement(plan.extras)
    cache = cache_dir or wheelhouse.default_cache_dir()
    wheelhouse.resolve(wheel_sets(plan, own), wheels, cache, run)
    wheelhouse.move_dependencies(wheels / "app", wheels / "deps")
    for folder in wheels.iterdir():
        wheelhouse.write_manifests(folder)
    path = out_dir / "Dockerfile"
    path.write_text(dockerfile(plan))
    return path


def reachable_engine(engines: Iterable[str] = ("docker", "podman")) -> str | None:
    """The first container engine whose daemon answers `<engine> info`; a client alone is not enough."""
    for engine in engines:
        executable = shutil.which(engine)
        if executable is None:
            continue
        try:
            completed = subprocess.run([executable, "info"], capture_output=True, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if completed.returncode == 0:
            return executable
    return None


def is_podman(engine: str) -> bool:
    """podman, or a `docker` that is podman's emulation (podman-docker): `--version` tells."""
    if Path(engine).name == "podman":
        return True
    if shutil.which(engine) is None:
        return False
    try:
        completed = subprocess.run([engine, "--version"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return completed.stdout.lower().startswith("podman")


def container_build_command(engine: str, tag: str, context: Path, base_image: str | None = None) -> list[str]:
    command = [engine, "build", "-t", tag, "-f", str(context / "Dockerfile")]
    if is_podman(engine):
        command += ["--format", "docker"]  # the OCI format has no HEALTHCHECK: podman would drop it
    if base_image:
        command += ["--build-arg", f"BASE_IMAGE={base_image}"]
    return [*command, str(context)]
