#!/usr/bin/env bash
# Installs the servers that the test suite starts by itself (tests/servers.py).
#
# - redis-server: from the system's package manager (Debian/Ubuntu apt).
# - Postgres: nothing to do here; the `pgserver` wheel from PyPI (in the [dev] extra) ships
#   its own Postgres binaries. When the tests run as root, pgserver runs Postgres as a system
#   user named `pgserver`, which it creates itself with `useradd`.
set -euo pipefail

if command -v redis-server >/dev/null 2>&1; then
    echo "redis-server already installed: $(command -v redis-server)"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "redis-server is not on PATH and apt-get is not available; install redis-server by hand." >&2
    exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends redis-server

echo "redis-server installed: $(command -v redis-server)"
