#!/usr/bin/env bash
# Installs everything the checks need (extras, test servers) and runs them all:
# ruff, mypy (strict for llama_stack/apis and llama_stack/distribution) and pytest, slow tier included.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh "torch,embeddings,multilingual-embeddings,redis,postgres,ollama,bedrock,faiss,sqlite-vec,chroma,pgvector,qdrant,agents,telemetry,dev"
bash scripts/install-test-servers.sh
bash scripts/install-container-engine.sh
SEMGREP_BIN="$(bash scripts/install-codeshield.sh)"
export PATH="$PWD/.venv/bin:$SEMGREP_BIN:$PATH"

echo "== ruff"; ruff check . && ruff format --check .
echo "== mypy"; mypy
echo "== pytest"; HF_HUB_OFFLINE=1 pytest -p no:cacheprovider "$@"
