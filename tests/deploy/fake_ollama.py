"""The fake Ollama (tests/fakes/ollama_server.py) as a server process, for the compose stack's
`ollama` service on hosts that cannot pull ollama/ollama (deploy/compose/ollama/compose.local.yaml).

It runs inside the stack's own image, whose venv has starlette and uvicorn, with this checkout's
tests/ mounted read-only: `python -m tests.deploy.fake_ollama`. It holds the embedding model the
stack's run.yaml names and offers its chat model for /api/pull, so the server's first start pulls
it as it would from a real Ollama. FAKE_OLLAMA_TOKEN_DELAY_S slows streams down (a test kills a
replica while one is open).
"""

from __future__ import annotations

import os

import uvicorn

from tests.fakes.ollama_model import embedder, llama_text
from tests.fakes.ollama_server import FakeOllama


def main() -> None:
    fake = FakeOllama(
        installed=[embedder("all-minilm:l6-v2", 384)],
        library=[llama_text("llama3.2:3b-instruct-fp16")],
        token_delay_s=float(os.environ.get("FAKE_OLLAMA_TOKEN_DELAY_S", "0")),
    )
    uvicorn.run(fake.app, host="0.0.0.0", port=int(os.environ.get("OLLAMA_PORT", "11434")), log_level="warning")


if __name__ == "__main__":
    main()
