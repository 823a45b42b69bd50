"""The proof scripts (scripts/prove_*.py, docs/proofs.md) in their short mode: each starts its own
servers, prints its figures, and exits non-zero when its proof fails. Slow tier: about three
minutes for the four on a busy two-core machine."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# Read at import, before the tests' isolated HOME: the tiny model cache is shared across sessions
# (tests/providers/transformers_support.py), so the disconnect proof does not rebuild it.
TINY_MODELS = Path(os.environ.get("LLAMA_STACK_TEST_MODELS") or "~/.cache/llama-stack-tests/tiny-models").expanduser()

pytestmark = pytest.mark.slow


def prove(script: str, *args: str, timeout_s: float = 280) -> str:
    completed = subprocess.run(
        [sys.executable, "-m", f"scripts.{script}", "--short", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, f"{script} failed (exit status {completed.returncode}):\n{output[-12000:]}"
    return output


def test_bad_input_gets_no_5xx_and_no_schema_violation() -> None:
    pytest.importorskip("schemathesis", reason="pip install schemathesis (the bad-input proof drives it)")
    output = prove("prove_bad_input")
    assert "schemathesis:" in output and "PROOF HOLDS" in output


def test_hundreds_of_concurrent_streams_without_an_error_and_memory_flat_after() -> None:
    output = prove("prove_load")
    assert "PROOF HOLDS" in output


def test_faults_leave_the_server_answering_with_nothing_acknowledged_lost() -> None:
    output = prove("prove_faults")
    assert "PROOF HOLDS" in output


def test_a_client_hanging_up_frees_the_generation_within_a_second() -> None:
    output = prove("prove_disconnect", "--tiny-dir", str(TINY_MODELS))
    assert "PROOF HOLDS" in output
