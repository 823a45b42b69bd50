"""The container engine of the container tier: podman, configured only through the project's own
deploy/podman/containers.conf (passed as CONTAINERS_CONF, so nothing under /etc changes), building
on a Debian base made locally by deploy/podman/build-debian-base.sh (no registry is needed).

Images are built the way a user builds them: `llama stack build --image-type container`. The
engine's storage keeps layers between runs, and the CLI's wheel cache keeps wheels, so a run whose
wheels did not change rebuilds nothing but the layer of this package's own wheel.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.deploy.dockerfiles import users_package_settings

ROOT = Path(__file__).resolve().parents[2]
CONTAINERS_CONF = ROOT / "deploy" / "podman" / "containers.conf"
BASE_SCRIPT = ROOT / "deploy" / "podman" / "build-debian-base.sh"
BASE_IMAGE = "localhost/llamastack-debian-base:bookworm"
LLAMA = str(Path(sys.executable).with_name("llama"))
# Each container of the tier carries this label, so a run removes what an interrupted one left.
LABEL = "llamastack-lite.test=container-tier"


@dataclass(frozen=True)
class Podman:
    binary: str
    env: dict[str, str]

    def __call__(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
        completed = subprocess.run(
            [self.binary, *args], env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and completed.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)} exited {completed.returncode}:\n{completed.stderr[-3000:]}")
        return completed

    def remove_leftovers(self) -> None:
        ids = self("ps", "-aq", "--filter", f"label={LABEL}").stdout.split()
        if ids:
            self("rm", "-f", "-t", "0", *ids, timeout=120)


def podman_or_skip() -> Podman:
    """The configured engine, or a skip that says why no container can run here."""
    binary = shutil.which("podman")
    if binary is None:
        pytest.skip("container tier: podman is not installed (scripts/install-container-engine.sh installs it)")
    podman = Podman(binary, {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)})
    info = podman("info", check=False, timeout=60)
    if info.returncode != 0:
        pytest.skip(f"container tier: `podman info` fails here: {info.stderr.strip()[-500:]}")
    if podman("image", "exists", BASE_IMAGE, check=False).returncode != 0:
        built = subprocess.run(
            ["bash", str(BASE_SCRIPT), BASE_IMAGE], env=podman.env, capture_output=True, text=True, timeout=600
        )
        if built.returncode != 0:
            pytest.skip(f"container tier: no base image could be built (mmdebstrap): {built.stderr.strip()[-500:]}")
    ran = podman("run", "--rm", "--label", LABEL, BASE_IMAGE, "python3", "-c", "print('ok')", check=False)
    if ran.returncode != 0:
        pytest.skip(f"container tier: podman cannot run a container here: {ran.stderr.strip()[-500:]}")
    podman.remove_leftovers()
    return podman


@dataclass(frozen=True)
class Image:
    tag: str
    build_seconds: float
    size_bytes: int
    context: Path


def build_image(podman: Podman, context: Path, tag: str, *source: str) -> Image:
    """`llama stack build --image-type container` with the engine it finds (docker's client has no
    daemon here, so podman), on the local Debian base."""
    previous = podman("image", "inspect", "--format", "{{.Id}}", tag, check=False).stdout.strip()
    started = time.monotonic()
    command = [LLAMA, "stack", "build", *source, "--image-type", "container", "--output-dir", str(context)]
    completed = subprocess.run(
        [*command, "--base-image", BASE_IMAGE, "--image-name", tag],
        env={
            **podman.env,
            "PATH": f"{Path(podman.binary).parent}{os.pathsep}{podman.env.get('PATH', '')}",
            **users_package_settings(),  # the tests' HOME is a fresh folder
        },
        capture_output=True,
        text=True,
        timeout=1200,
    )
    seconds = time.monotonic() - started
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert f"Built the image {tag}" in completed.stdout
    size = int(podman("image", "inspect", "--format", "{{.Size}}", tag).stdout.strip())
    if previous and previous != podman("image", "inspect", "--format", "{{.Id}}", tag).stdout.strip():
        podman("rmi", previous, check=False)  # the tier's last image of this tag, now untagged
    return Image(tag, seconds, size, context)


@dataclass
class Container:
    podman: Podman
    name: str
    url: str
    started_at: float = field(default_factory=time.monotonic)

    def healthy(self) -> bool:
        """The image's own HEALTHCHECK command, run by the engine inside the container."""
        return self.podman("healthcheck", "run", self.name, check=False, timeout=30).returncode == 0

    def wait_healthy(self, timeout: float = 900) -> float:
        """Seconds from the start of the container until its health check first passed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.healthy():
                return time.monotonic() - self.started_at
            if self.state() == "exited":
                break
            time.sleep(0.5)
        raise AssertionError(f"{self.name} never became healthy; its log:\n{self.logs()[-4000:]}")

    def state(self) -> str:
        return self.podman("inspect", "--format", "{{.State.Status}}", self.name).stdout.strip()

    def logs(self) -> str:
        completed = self.podman("logs", self.name, check=False)
        return completed.stdout + completed.stderr

    def restart(self) -> None:
        self.podman("restart", "-t", "30", self.name, timeout=120)
        self.started_at = time.monotonic()

    def stop(self) -> tuple[float, int]:
        """Stop with SIGTERM (SIGKILL only after 30 s): the seconds it took and the exit code."""
        started = time.monotonic()
        self.podman("stop", "-t", "30", self.name, timeout=120)
        seconds = time.monotonic() - started
        code = int(self.podman("inspect", "--format", "{{.State.ExitCode}}", self.name).stdout.strip())
        return seconds, code

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"{self.url}{path}", timeout=10)


@contextmanager
def running(podman: Podman, image: str, name: str, port: int, *options: str) -> Iterator[Container]:
    """`podman run -d` of an image; the container is removed afterwards, its volumes are not."""
    podman("rm", "-f", "-t", "0", name, check=False)
    container = Container(podman, name, f"http://127.0.0.1:{port}")
    podman("run", "-d", "--name", name, "--label", LABEL, *options, image)
    try:
        yield container
    finally:
        podman("rm", "-f", "-t", "0", name, check=False, timeout=120)
