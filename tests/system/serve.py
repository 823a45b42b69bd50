"""The system tier's stack server launcher:

    python -m tests.system.serve run.yaml --port N

installs the test providers (tests/scripted.py, the scripted Llama Guard) and then serves exactly
as `llama stack run` does (llama_stack.server.run.serve): build the stack, then uvicorn on the
same loop. A separate process, so that a test can SIGKILL it and read its RSS and open FDs.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from pathlib import Path


def main() -> None:
    from llama_stack.distribution.spec import load_run_config
    from llama_stack.server.run import serve
    from tests.providers.safety.stacks import install_safety_providers

    parser = argparse.ArgumentParser(prog="python -m tests.system.serve")
    parser.add_argument("run_yaml", type=Path)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    install_safety_providers()  # the scripted chat model and the scripted Llama Guard among them
    config = load_run_config(args.run_yaml, dict(os.environ))
    asyncio.run(serve(config, host="127.0.0.1", port=args.port))  # SIGTERM: a graceful stop


if __name__ == "__main__":
    main()
