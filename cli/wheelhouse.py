"""The wheelhouse of a container image: every wheel the image installs, fetched on the host.

`llama stack build --image-type container` resolves exactly the distribution's packages here, with
the host's pip (its index, proxy and certificates), and the Dockerfile installs them with
`--no-index`. So the image build needs no network: it works behind intercepting proxies whose CA
the base image does not trust, and the same wheelhouse gives the same image.

The wheelhouse has one folder per set of wheels, each installed in a layer of its own, from the
one that changes least to the one that changes most:
- `torch/`: the CPU build of torch and its dependencies (only when a provider needs torch);
- `deps/`: every other package the server needs (the extras' and the providers' packages);
- `semgrep/`: semgrep for CodeShield, whose pins clash with the server's, for a venv of its own;
- `app/`: this package's own wheel, and the requirements that were resolved.
Each folder lists its wheels pinned (`pins.txt`) and hashed (`SHA256SUMS`): the Dockerfile copies
the hashes before the layer that installs the folder, so that a changed wheel rebuilds that layer.

Wheels are kept in a cache folder between builds, keyed by their file name (name, version, Python
and platform tags); a build first resolves from that cache alone, and asks the index only when the
cache cannot satisfy it. The package's own wheel is always built afresh and never cached: its
version does not change with every edit of a checkout.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

Runner = Callable[[Sequence[str]], None]

TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
# The local version label selects the CPU build: a plain torch==2.13.0 from PyPI pulls CUDA.
TORCH_CPU_REQUIREMENT = "torch==2.13.0+cpu"
# semgrep newer than 1.100.0 silently scans nothing; codeshield would pull the newest one.
SEMGREP_REQUIREMENT = "semgrep==1.100.0"
CODESHIELD_REQUIREMENT = "codeshield>=1.0.1"
REQUIREMENTS = "requirements.txt"
PINS = "pins.txt"
HASHES = "SHA256SUMS"
OWN_WHEEL_PREFIX = "llamastack_lite-"
# Wheels built from a checkout carry this date, not the files' times: the same source gives the
# same wheel, so an image layer keyed by its hash is reused.
REPRODUCIBLE_EPOCH = "315532800"
MIN_SETUPTOOLS = 68  # pyproject.toml's build-system.requires
# The oldest Python the image's base may have: pip resolves with the host's Python (3.11.7, say),
# and a base with an older 3.11 (Debian bookworm's is 3.11.2) needs what markers such as
# `python_full_version < "3.11.3"` add (redis needs async-timeout there).
OLDEST_BASE_PYTHON = "3.11.0"


@dataclass(frozen=True)
class WheelSet:
    """One folder of the wheelhouse: what to resolve into it, and the folders it may reuse."""

    folder: str
    requirements: tuple[str, ...]
    no_deps: tuple[str, ...] = ()
    reuses: tuple[str, ...] = ()
    # An index that holds the requirements themselves (not their dependencies): PyTorch's CPU index.
    index: str | None = None


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path("~/.cache").expanduser())
    return Path(base) / "llamastack-lite" / "wheels"


def pip(*args: str) -> list[str]:
    return [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]


def wheel_command(wheel_set: WheelSet, args: Sequence[str], wheels_dir: Path, cache_dir: Path) -> list[str]:
    """`pip wheel` into the set's folder, finding wheels in it, the folders it reuses and the cache."""
    command = pip("wheel", "--quiet", "--wheel-dir", str(wheels_dir / wheel_set.folder))
    for link in [*(str(wheels_dir / f) for f in (wheel_set.folder, *wheel_set.reuses)), str(cache_dir)]:
        command += ["--find-links", link]
    return [*command, *args]


def steps(wheel_set: WheelSet) -> list[list[str]]:
    """The pip arguments that fill a set's folder, in order (each tried from the cache alone first)."""
    found: list[list[str]] = []
    if wheel_set.index:
        # The requirements alone from their own index; asked for every dependency too, an
        # unreachable extra index would cost retries per package.
        found.append(["--no-deps", "--extra-index-url", wheel_set.index, *wheel_set.requirements])
    found.append(list(wheel_set.requirements))
    if wheel_set.no_deps:
        found.append(["--no-deps", *wheel_set.no_deps])
    return found


def _quiet(command: Sequence[str]) -> bool:
    return subprocess.run(list(command), capture_output=True, check=False).returncode == 0


def _cache_new_wheels(folder: Path, cache_dir: Path) -> None:
    cache_dir.mkdir(parents=True, exist_ok=True)
    for wheel in folder.glob("*.whl"):
        target = cache_dir / wheel.name
        if wheel.name.startswith(OWN_WHEEL_PREFIX) or target.exists():
            continue
        partial = target.with_suffix(".partial")
        shutil.copyfile(wheel, partial)
        partial.replace(target)  # a concurrent build never sees half a wheel


def _has_build_backend() -> bool:
    """Whether this Python has the setuptools the checkout's pyproject.toml asks for: then pip
    builds with it instead of installing one into an isolated environment (three times slower)."""
    try:
        major = int(metadata.version("setuptools").split(".")[0])
    except (metadata.PackageNotFoundError, ValueError):
        return False
    return major >= MIN_SETUPTOOLS


def build_own_wheel(source_root: Path, folder: Path, copy_source: Callable[[Path, Path], None], run: Runner) -> None:
    """This package's wheel, built from a clean copy of the checkout (no build/ or egg-info left in it)."""
    with tempfile.TemporaryDirectory(prefix="llamastack-wheel-") as scratch:
        copy = Path(scratch) / "src"
        copy_source(source_root, copy)
        previous = os.environ.get("SOURCE_DATE_EPOCH")
        os.environ["SOURCE_DATE_EPOCH"] = REPRODUCIBLE_EPOCH
        try:
            isolation = ["--no-build-isolation"] if _has_build_backend() else []
            run(pip("wheel", "--quiet", "--no-deps", *isolation, "--wheel-dir", str(folder), str(copy)))
        finally:
            if previous is None:
                del os.environ["SOURCE_DATE_EPOCH"]
            else:
                os.environ["SOURCE_DATE_EPOCH"] = previous


def resolve(wheel_sets: Sequence[WheelSet], wheels_dir: Path, cache_dir: Path, run: Runner) -> None:
    """Fill each set's folder with its whole dependency closure, and write its requirement files."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    for wheel_set in wheel_sets:
        folder = wheels_dir / wheel_set.folder
        folder.mkdir(parents=True, exist_ok=True)
        for args in steps(wheel_set):
            offline = [a for a in args if a != "--extra-index-url" and a != wheel_set.index]
            if not _quiet(wheel_command(wheel_set, ["--no-index", *offline], wheels_dir, cache_dir)):
                run(wheel_command(wheel_set, args, wheels_dir, cache_dir))
        for _ in range(3):  # what they add may itself need more on the older Python (rarely)
            older = requirements_of_older_pythons([folder, *(wheels_dir / f for f in wheel_set.reuses)])
            if not older:
                break
            if not _quiet(wheel_command(wheel_set, ["--no-index", *older], wheels_dir, cache_dir)):
                run(wheel_command(wheel_set, older, wheels_dir, cache_dir))
        for other in wheel_set.reuses:  # each wheel lies in one folder: the image gets one copy
            for wheel in (wheels_dir / other).glob("*.whl"):
                (folder / wheel.name).unlink(missing_ok=True)
        (folder / REQUIREMENTS).write_text("".join(f"{r}\n" for r in wheel_set.requirements))
        _cache_new_wheels(folder, cache_dir)


def requirements_of_older_pythons(folders: Sequence[Path]) -> list[str]:
    """The dependencies that the folders' wheels declare only for a Python older than the host's
    (down to OLDEST_BASE_PYTHON) and that no folder holds yet, without their markers."""
    wheels = [w for folder in folders for w in folder.glob("*.whl")]
    present = {canonicalize_name(w.name.split("-")[0]) for w in wheels}
    here = {**{key: str(value) for key, value in default_environment().items()}, "extra": ""}
    older = {**here, "python_full_version": OLDEST_BASE_PYTHON}
    missing: dict[str, None] = {}
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            name = next((n for n in archive.namelist() if n.endswith(".dist-info/METADATA")), None)
            text = archive.read(name).decode("utf-8", "replace") if name else ""
        for line in text.splitlines():
            if not line.startswith("Requires-Dist:"):
                continue
            requirement = Requirement(line.split(":", 1)[1].strip())
            marker = requirement.marker
            if marker is None or not marker.evaluate(older) or marker.evaluate(here):
                continue
            if canonicalize_name(requirement.name) not in present:
                requirement.marker = None
                missing[str(requirement)] = None
    return list(missing)


def pin(wheel: Path) -> str:
    """`name==version` from a wheel's file name (PEP 427: name-version-[build-]python-abi-platform)."""
    name, version = wheel.name.split("-")[:2]
    return f"{name}=={version}"


def move_dependencies(app: Path, deps: Path) -> None:
    """Leave only this package's own wheel in app/; its dependencies go to deps/."""
    deps.mkdir(parents=True, exist_ok=True)
    for wheel in app.glob("*.whl"):
        if not wheel.name.startswith(OWN_WHEEL_PREFIX):
            wheel.replace(deps / wheel.name)


def write_manifests(folder: Path) -> None:
    wheels = sorted(folder.glob("*.whl"))
    (folder / PINS).write_text("".join(f"{pin(w)}\n" for w in wheels))
    hashes = []
    for wheel in wheels:
        with wheel.open("rb") as f:
            digest = hashlib.file_digest(f, "sha256").hexdigest()
        hashes.append(f"{digest}  {wheel.name}\n")
    (folder / HASHES).write_text("".join(hashes))
