#!/usr/bin/env bash
# CodeShield for the inline::code-scanner shield. semgrep must be exactly 1.100.0 (newer versions
# silently scan nothing) and its pins (rich, opentelemetry) clash with the server's, so it lives in
# a venv of its own; CodeShield only needs its semgrep-core binary on PATH. Prints that bin folder.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv-semgrep/bin/python ]; then
    python3 -m venv .venv-semgrep
fi
.venv-semgrep/bin/python -m pip --disable-pip-version-check --quiet install "semgrep==1.100.0" >&2
.venv/bin/python -m pip --disable-pip-version-check --quiet install --no-deps "codeshield>=1.0.1" >&2
.venv-semgrep/bin/python -c "import semgrep, pathlib; print(pathlib.Path(semgrep.__file__).parent / 'bin')"
