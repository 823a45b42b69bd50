#!/usr/bin/env bash
# Installs the system packages the test suite uses:
# - redis-server: the tests start their own (tests/servers.py);
# - bubblewrap: the code_interpreter sandbox (the tests cover both it and the fallback);
# - wrk: the gateway benchmark's load generator (benchmarks/bench_gateway.py).
# Postgres needs nothing here: the `pgserver` wheel (in the [dev] extra) ships its own binaries.
# When the tests run as root, pgserver runs Postgres as a system user `pgserver` it creates itself.
set -euo pipefail

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
if [ ${#missing[@]} -eq 0 ]; then
    echo "system packages present: redis-server, bubblewrap, wrk"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "missing ${missing[*]} and apt-get is not available; install them by hand." >&2
    exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
echo "installed: ${missing[*]}"
