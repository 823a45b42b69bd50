"""The wheelhouse of a container build (cli/wheelhouse.py), without a container engine: this
package's wheel is reproducible, so image layers keyed by wheel hashes are reused when nothing
changed; and a wheel's pin is read from its file name."""

from __future__ import annotations

import hashlib
import sys
import zipfile
from pathlib import Path

import pytest

from llama_stack.cli import build as builder
from llama_stack.cli import wheelhouse
from tests.deploy.stack_files import ROOT


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_the_package_wheel_is_the_same_for_the_same_source(tmp_path: Path) -> None:
    frozen = tmp_path / "checkout"
    builder.copy_source(ROOT, frozen)  # the shared checkout may change between two builds
    hashes = []
    for attempt in ("first", "second"):
        folder = tmp_path / attempt
        wheelhouse.build_own_wheel(frozen, folder, builder.copy_source, builder.run_streaming)
        (wheel,) = folder.glob("llamastack_lite-*.whl")
        hashes.append(sha256(wheel))
    assert hashes[0] == hashes[1]


def test_pins_and_hashes_come_from_the_wheels(tmp_path: Path) -> None:
    torch = "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"
    (tmp_path / torch).write_bytes(b"torch")
    (tmp_path / "typing_extensions-4.16.0-py3-none-any.whl").write_bytes(b"te")
    wheelhouse.write_manifests(tmp_path)
    assert (tmp_path / "pins.txt").read_text() == "torch==2.13.0+cpu\ntyping_extensions==4.16.0\n"
    hashes = (tmp_path / "SHA256SUMS").read_text().splitlines()
    assert hashes[0] == f"{hashlib.sha256(b'torch').hexdigest()}  {torch}"


def test_only_the_torch_set_asks_pytorch_index_and_for_torch_alone() -> None:
    plan = builder.BuildPlan("demo", ("torch",), (), needs_torch=True, no_deps_packages=("weights==1",))
    sets = {s.folder: s for s in builder.wheel_sets(plan, "llamastack-lite[torch]==0.1.0")}
    assert set(sets) == {"torch", "app"}
    torch_steps = wheelhouse.steps(sets["torch"])
    assert torch_steps[0] == ["--no-deps", "--extra-index-url", wheelhouse.TORCH_CPU_INDEX, "torch==2.13.0+cpu"]
    assert all(wheelhouse.TORCH_CPU_INDEX not in step for step in torch_steps[1:])
    assert wheelhouse.steps(sets["app"]) == [["llamastack-lite[torch]==0.1.0"], ["--no-deps", "weights==1"]]
    command = wheelhouse.wheel_command(sets["app"], ["x"], Path("/w"), Path("/cache"))
    assert command[:3] == [sys.executable, "-m", "pip"]
    assert [command[i + 1] for i, a in enumerate(command) if a == "--find-links"] == ["/w/app", "/w/torch", "/cache"]


@pytest.mark.skipif(sys.version_info < (3, 11, 3), reason="needs a host Python newer than the markers' bound")
def test_dependencies_only_an_older_python_needs_are_asked_for(tmp_path: Path) -> None:
    """A base with an older 3.11 than the host's (Debian's 3.11.2) needs what such markers add:
    redis wants async-timeout below 3.11.3, and pip on a newer host skips it."""

    def wheel(name: str, *requires: str) -> None:
        metadata = "Metadata-Version: 2.1\n" + "".join(f"Requires-Dist: {r}\n" for r in requires)
        with zipfile.ZipFile(tmp_path / f"{name}-1.0-py3-none-any.whl", "w") as archive:
            archive.writestr(f"{name}-1.0.dist-info/METADATA", metadata)

    wheel("redis", 'async-timeout>=4.0.3; python_full_version < "3.11.3"', 'hiredis>=3; extra == "hiredis"')
    wheel("anyio", 'exceptiongroup>=1.0.2; python_version < "3.11"', "idna>=2.8")
    assert wheelhouse.requirements_of_older_pythons([tmp_path]) == ["async-timeout>=4.0.3"]
    wheel("async_timeout")
    assert wheelhouse.requirements_of_older_pythons([tmp_path]) == []
