"""The Dockerfile of a container build context, whose wheels/ holds every package the image installs
(cli/wheelhouse.py): a plain function of the build plan, tested without a container engine."""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import wheelhouse

if TYPE_CHECKING:
    from .build import BuildPlan

CONTAINER_BASE = "python:3.11-slim"
CONTAINER_PORT = 5000
WHEELS_IN_CONTEXT = "wheels"
# The server's venv in the image, and semgrep's own (its pins clash with the server's).
IMAGE_VENV = "/opt/llamastack"
SEMGREP_VENV = "/opt/semgrep"
# The image runs as this user, named by number so that no host needs to resolve the name.
CONTAINER_USER = "llama"
CONTAINER_UID = 1000


def _install_layer(folder: str, venv: str = IMAGE_VENV) -> list[str]:
    """Dockerfile lines installing one wheelhouse folder's pinned wheels. Its hashes are copied first:
    the copy's cache key is their content, so the layer is rebuilt exactly when a wheel changes."""
    return [
        f"COPY {WHEELS_IN_CONTEXT}/{folder}/{wheelhouse.HASHES} {venv}/wheels/{folder}.sha256",
        f"RUN --mount=type=bind,source={WHEELS_IN_CONTEXT}/{folder},target=/wheels/{folder} \\",
        f"    {venv}/bin/pip install --no-index --no-deps --find-links /wheels/{folder}"
        f" -r /wheels/{folder}/{wheelhouse.PINS}",
    ]


def dockerfile(plan: BuildPlan) -> str:
    """The Dockerfile of a build context whose wheels/ holds every package the image installs.

    It passes hadolint with no finding at any level: the user is numeric (DL3066), and pip installs
    requirement files pinned by the wheelhouse, with pip's cache off.
    """
    user = f"{CONTAINER_UID}:{CONTAINER_UID}"
    home = f"/home/{CONTAINER_USER}"
    path = f"{IMAGE_VENV}/bin:{SEMGREP_VENV}/core:$PATH" if plan.needs_semgrep else f"{IMAGE_VENV}/bin:$PATH"
    lines = [
        f"# The '{plan.name}' distribution, written by `llama stack build`. It installs only from the",
        "# wheelhouse beside this file (wheels/): the build needs no network and no package index.",
        "# Another base works if it has Python 3.11 (with venv) and useradd: --build-arg BASE_IMAGE=...",
        f"ARG BASE_IMAGE={CONTAINER_BASE}",
        "FROM ${BASE_IMAGE}",
        "",
        "ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1",
        "",
        "# The state folder exists in the image so that a new volume mounted on it belongs to the user.",
        f"RUN groupadd --gid {CONTAINER_UID} {CONTAINER_USER} \\",
        f"    && useradd --create-home --uid {CONTAINER_UID} --gid {CONTAINER_UID} {CONTAINER_USER} \\",
        f"    && install -d -o {CONTAINER_UID} -g {CONTAINER_UID} {home}/.llama \\",
        f"    && python3 -m venv {IMAGE_VENV}",
        "",
        "# One layer per wheelhouse folder, from the one that changes least to this package's own.",
    ]
    if plan.needs_torch:
        lines += _install_layer("torch")
    lines += _install_layer("deps")
    if plan.needs_semgrep:
        lines += [
            "",
            "# CodeShield runs semgrep-core, found on PATH; semgrep's pins clash with the server's, so it",
            "# has a venv of its own. On first use CodeShield links osemgrep beside semgrep-core: done",
            "# here, as root, because the server's user cannot write there.",
            f"RUN python3 -m venv {SEMGREP_VENV}",
            *_install_layer("semgrep", SEMGREP_VENV)[:-1],
            f"    {SEMGREP_VENV}/bin/pip install --no-index --no-deps --find-links /wheels/semgrep"
            f" -r /wheels/semgrep/{wheelhouse.PINS} \\",
            f"    && ln -s {SEMGREP_VENV}/lib/python3*/site-packages/semgrep/bin {SEMGREP_VENV}/core \\",
            f"    && ln -s semgrep-core {SEMGREP_VENV}/core/osemgrep",
        ]
    links = " ".join(f"--find-links /wheels/{f}" for f in ("app", "deps", *(["torch"] if plan.needs_torch else [])))
    lines += [
        "",
        "# pip resolves the requirements again, against what is installed: a wheelhouse that does not",
        "# satisfy them fails the build here rather than the server at startup.",
        f"COPY {WHEELS_IN_CONTEXT}/app/{wheelhouse.HASHES} {IMAGE_VENV}/wheels/app.sha256",
        f"RUN --mount=type=bind,source={WHEELS_IN_CONTEXT},target=/wheels \\",
        f"    {IMAGE_VENV}/bin/pip install --no-index {links} -r /wheels/app/{wheelhouse.REQUIREMENTS}",
    ]
    health = (
        "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + "
        f"os.environ.get('LLAMA_STACK_PORT', '{CONTAINER_PORT}') + '/alpha/health', timeout=4)"
    )
    lines += [
        "",
        "WORKDIR /app",
        f"COPY --chown={user} run.yaml /app/run.yaml",
        f"USER {user}",
        "",
        f"ENV HOME={home} LLAMA_STACK_PORT={CONTAINER_PORT} VIRTUAL_ENV={IMAGE_VENV} PATH={path}",
        f"EXPOSE {CONTAINER_PORT}",
        "# slim images have no curl: python checks the health route.",
        "HEALTHCHECK --interval=30s --timeout=5s --start-period=300s --retries=3 \\",
        f'    CMD ["python", "-c", "{health}"]',
        'ENTRYPOINT ["llama", "stack", "run", "/app/run.yaml"]',
        "",
    ]
    return "\n".join(lines)
