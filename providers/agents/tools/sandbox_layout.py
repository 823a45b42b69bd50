"""What a Python interpreter needs on disk to run programs with a chosen set of packages: its
executable, its shared library, its standard library, and the files of each package and of the
packages those depend on. The sandbox binds exactly these, read-only, into an empty root.

Standard library only: the server imports it for its own interpreter, and runs it as a script
(`python -I sandbox_layout.py numpy pandas`, printing JSON) for another one.
"""

from __future__ import annotations

import json
import os
import re
import sys
import sysconfig
from importlib import metadata
from typing import Any

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirements(dist: metadata.Distribution) -> list[str]:
    """Names of what `dist` needs; optional extras are left out."""
    names = []
    for requirement in dist.requires or []:
        if "extra ==" in requirement.replace('"', "'").replace("extra==", "extra =="):
            continue
        match = _NAME.match(requirement)
        if match:
            names.append(match.group(1))
    return names


def _top_level(dist: metadata.Distribution) -> list[str]:
    """Absolute paths of the distribution's top-level entries in its site directory."""
    entries: set[str] = set()
    for file in dist.files or []:
        parts = file.parts
        if not parts or parts[0] in ("..", "__pycache__") or parts[0].endswith(".pth"):
            continue
        entries.add(str(dist.locate_file(parts[0])))
    if dist.files is None:  # no RECORD (e.g. a Debian package): its top-level names
        for name in (dist.read_text("top_level.txt") or "").split():
            entries |= {str(dist.locate_file(name)), str(dist.locate_file(name + ".py"))}
    return sorted(path for path in entries if os.path.exists(path))


def packages(wanted: list[str]) -> tuple[dict[str, list[str]], list[str]]:
    """{distribution: its top-level paths} for `wanted` and everything they require, and the
    wanted names that are not installed."""
    found: dict[str, list[str]] = {}
    missing: list[str] = []
    queue = [(name, True) for name in wanted]
    while queue:
        name, asked_for = queue.pop()
        key = _normalise(name)
        if key in found:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            if asked_for:
                missing.append(name)
            continue  # an optional dependency that is not installed
        found[key] = _top_level(dist)
        queue.extend((requirement, False) for requirement in _requirements(dist))
    return found, sorted(missing)


def _standard_library() -> list[str]:
    """The base interpreter's library folders (never a venv's, which holds its site-packages)."""
    folders = {os.path.dirname(os.path.realpath(os.__file__))}
    folders |= {os.path.realpath(path) for path in sys.path if path.endswith("lib-dynload") and os.path.isdir(path)}
    return sorted(folder for folder in folders if not any(folder.startswith(other + os.sep) for other in folders))


def describe(wanted: list[str]) -> dict[str, Any]:
    libraries = []
    if sysconfig.get_config_var("Py_ENABLE_SHARED"):
        libdir = sysconfig.get_config_var("LIBDIR") or ""
        for name in {sysconfig.get_config_var("INSTSONAME"), sysconfig.get_config_var("LDLIBRARY")}:
            path = os.path.join(libdir, name or "")
            if name and os.path.isfile(path):
                libraries.append(os.path.realpath(path))
    found, missing = packages(wanted)
    return {
        "executable": os.path.realpath(sys.executable),
        "stdlib": _standard_library(),
        "libraries": sorted(set(libraries)),
        "packages": found,
        "missing": missing,
    }


if __name__ == "__main__":
    print(json.dumps(describe(sys.argv[1:])))
