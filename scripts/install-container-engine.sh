#!/usr/bin/env bash
# Installs the container engine of the container test tiers (tests/deploy/test_images.py and
# test_compose_stack.py): podman with runc, podman-compose, and mmdebstrap to build the Debian base
# and services images where no registry can be reached. It changes nothing outside apt: the engine's settings are
# the project's own deploy/podman/containers.conf, which the tests pass through CONTAINERS_CONF.
# Where the packages cannot be installed it says so and succeeds: that tier then skips, naming why.
set -uo pipefail

missing=()
command -v podman >/dev/null 2>&1 || missing+=(podman)
command -v runc >/dev/null 2>&1 || missing+=(runc)
command -v podman-compose >/dev/null 2>&1 || missing+=(podman-compose)
command -v mmdebstrap >/dev/null 2>&1 || missing+=(mmdebstrap)
if [ ${#missing[@]} -eq 0 ]; then
    echo "container engine present: $(podman --version), runc, podman-compose, mmdebstrap"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo -n"
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "container tier: cannot install ${missing[*]} (no apt-get); its tests will skip" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
if $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q "${missing[@]}" buildah >/dev/null; then
    echo "installed: ${missing[*]}"
else
    echo "container tier: installing ${missing[*]} failed; its tests will skip" >&2
fi
exit 0
