#!/usr/bin/env bash
# Installs the project with what the demo distribution needs, then serves it on port 5000.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh "torch,embeddings,faiss,agents"
exec .venv/bin/llama stack run demo "$@"
