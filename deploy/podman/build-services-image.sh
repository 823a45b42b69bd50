#!/usr/bin/env bash
# Builds the image that stands in for the compose stacks' registry images of Postgres (with
# pgvector) and Redis on hosts without a registry: Debian trixie's own packages, installed by
# mmdebstrap on the host (no network inside an image build) and imported. One image serves both
# services: Postgres through deploy/podman/services/postgres-entrypoint.sh (the official image's
# POSTGRES_USER/PASSWORD/DB contract), Redis through the compose file's own redis-server command.
#   usage: build-services-image.sh [TAG]   (default localhost/llamastack-services:trixie)
# An existing tag is kept: delete it to rebuild.
set -euo pipefail
TAG="${1:-localhost/llamastack-services:trixie}"
ENGINE="${CONTAINER_ENGINE:-podman}"
HERE="$(cd "$(dirname "$0")" && pwd)"

if "$ENGINE" image exists "$TAG" 2>/dev/null; then
    echo "$TAG exists"
    exit 0
fi
workdir="$(mktemp -d)"
trap 'rm -rf "$workdir"' EXIT
# trixie, not bookworm: bookworm has no pgvector package. It gives Postgres 17 with pgvector 0.8 and
# Redis 8.0, where the registry stack pins Postgres 16 with pgvector 0.8 and Redis 7.4; the stack
# uses nothing that differs between them.
mmdebstrap --quiet --variant=minbase \
    --include=postgresql-17,postgresql-17-pgvector,redis-server \
    --aptopt='Acquire::Retries "3"' \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
    --customize-hook='rm -rf "$1"/var/lib/postgresql/17/main "$1"/etc/postgresql/17/main' \
    --customize-hook="copy-in $HERE/services/postgres-entrypoint.sh /usr/local/bin" \
    --customize-hook='mkdir -p "$1"/data' \
    trixie "$workdir/rootfs.tar"
"$ENGINE" import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'WORKDIR /data' \
    --change 'CMD ["/usr/local/bin/postgres-entrypoint.sh"]' \
    "$workdir/rootfs.tar" "$TAG" >/dev/null
echo "$TAG built"
