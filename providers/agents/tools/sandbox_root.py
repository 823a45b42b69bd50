"""The root of the bubblewrap sandbox: empty but for what one interpreter needs, read-only.

`Layout` says what that is (found by sandbox_layout.py, for the server's interpreter in-process
or for another one as a script); `root_binds` turns it into bwrap arguments. The configured
packages are bound one top-level entry at a time into SANDBOX_SITE, which the boot code adds to
sys.path of an interpreter started with -S (so its own site-packages are never searched).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llama_stack.apis.errors import ProviderError

from . import sandbox_layout

SANDBOX_SITE = "/opt/sandbox/site-packages"
_LAYOUT_SCRIPT = str(Path(__file__).with_name("sandbox_layout.py"))
_SYSTEM_LIBRARIES = ("/usr/lib", "/usr/lib64", "/usr/lib32", "/lib", "/lib64", "/lib32")


@dataclass(frozen=True)
class Layout:
    """What the sandbox root holds for one interpreter (sandbox_layout.describe)."""

    executable: str
    stdlib: list[str]
    libraries: list[str]
    packages: dict[str, list[str]]  # distribution -> its top-level files and folders
    missing: list[str]  # configured packages this interpreter does not have

    @classmethod
    def of(cls, python: str, packages: list[str]) -> Layout:
        found: dict[str, Any]
        if os.path.realpath(python) == os.path.realpath(sys.executable):
            found = sandbox_layout.describe(packages)
        else:  # sandbox_layout.py is this package's own, standard-library-only code
            done = subprocess.run(
                [python, "-I", _LAYOUT_SCRIPT, *packages], capture_output=True, text=True, timeout=60, check=False
            )
            if done.returncode != 0:
                raise ProviderError(f"cannot inspect {python}: {done.stderr.strip()[-500:]}")
            found = json.loads(done.stdout)
        return cls(
            executable=str(found["executable"]),
            stdlib=list(found["stdlib"]),
            libraries=list(found["libraries"]),
            packages={str(name): list(paths) for name, paths in found["packages"].items()},
            missing=list(found["missing"]),
        )


def root_binds(layout: Layout) -> list[str]:
    """bwrap arguments that fill the empty root with what the interpreter needs, read-only."""
    args: list[str] = []
    for folder in _SYSTEM_LIBRARIES:
        if os.path.islink(folder):
            args += ["--symlink", os.readlink(folder), folder]
        elif os.path.isdir(folder):
            args += ["--ro-bind", folder, folder]
    for path in (layout.executable, *layout.libraries):
        args += ["--ro-bind", path, path]
    for folder in layout.stdlib:
        args += ["--ro-bind", folder, folder]
        for hidden in ("site-packages", "dist-packages"):  # what was installed there is not offered
            inner = os.path.join(folder, hidden)
            if os.path.isdir(inner):
                args += ["--tmpfs", inner, "--remount-ro", inner]
    placed: set[str] = set()
    for paths in layout.packages.values():
        for path in paths:
            name = os.path.basename(path)
            if name not in placed:
                placed.add(name)
                args += ["--ro-bind", path, f"{SANDBOX_SITE}/{name}"]
    if os.path.isfile("/etc/ld.so.cache"):  # where the loader finds shared libraries; no secrets
        args += ["--ro-bind", "/etc/ld.so.cache", "/etc/ld.so.cache"]
    return _open_parents(args) + args


def _open_parents(args: list[str]) -> list[str]:
    """Folders that lead to the bound paths, made 0755: bwrap would make them 0700, closed to the
    sandbox user when the server is root."""
    destinations = [args[i + 2] for i, arg in enumerate(args) if arg in ("--ro-bind", "--symlink")]
    parents: list[str] = []
    for destination in destinations:
        for folder in map(str, reversed(Path(destination).parents)):
            if folder != "/" and folder not in parents:
                parents.append(folder)
    made: list[str] = []
    for parent in parents:
        made += ["--perms", "0755", "--dir", parent]
    return made
