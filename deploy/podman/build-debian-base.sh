#!/usr/bin/env bash
# Builds a Debian bookworm base image with Python 3.11 from Debian's own packages, for hosts that
# cannot pull `python:3.11-slim` from a registry (the container tests run on one). The image is
# made by mmdebstrap and imported, so it needs only a Debian mirror, never a container registry.
# Pass it to a build as `--build-arg BASE_IMAGE=<tag>`. An existing tag is kept: delete it to rebuild.
#   usage: build-debian-base.sh [TAG]   (default localhost/llamastack-debian-base:bookworm)
set -euo pipefail
TAG="${1:-localhost/llamastack-debian-base:bookworm}"
ENGINE="${CONTAINER_ENGINE:-podman}"

if "$ENGINE" image exists "$TAG" 2>/dev/null; then
    echo "$TAG exists"
    exit 0
fi
workdir="$(mktemp -d)"
trap 'rm -rf "$workdir"' EXIT
# python3-venv: the image installs into a venv; passwd: useradd for the image's non-root user;
# ca-certificates: TLS to remote providers. bookworm's python3 is 3.11, as in python:3.11-slim.
mmdebstrap --quiet --variant=minbase \
    --include=python3,python3-venv,ca-certificates,passwd \
    --aptopt='Acquire::Retries "3"' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
    bookworm "$workdir/rootfs.tar"
"$ENGINE" import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    "$workdir/rootfs.tar" "$TAG" >/dev/null
echo "$TAG built"
