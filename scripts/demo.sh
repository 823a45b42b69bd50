#!/usr/bin/env bash
# Installs the project with what the demo distribution needs, then serves it on port 5000.
# The demo's shield is CodeShield: semgrep==1.100.0 goes in a venv of its own (its pins clash with
# the server's) and its semgrep-core on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh "torch,embeddings,multilingual-embeddings,faiss,agents"
SEMGREP_BIN="$(bash scripts/install-codeshield.sh)"
export PATH="$SEMGREP_BIN:$PATH"
exec .venv/bin/llama stack run demo "$@"
