"""Every ```python block of docs/sdk.md runs against a live server (scripted inference and agents
providers); where a ```text block follows it, that is the output the example must print."""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.live import LiveServer, live_server

DOC = Path(__file__).parents[2] / "docs" / "sdk.md"
BLOCK = re.compile(r"```python\n(?P<code>.*?)```(?:\s*```text\n(?P<output>.*?)```)?", re.DOTALL)


def examples() -> list[Any]:
    text = DOC.read_text()
    found = []
    for match in BLOCK.finditer(text):
        line = text[: match.start()].count("\n") + 1
        # Padded so that a traceback points at the example's own lines in the doc.
        code = "\n" * line + match["code"]
        found.append(pytest.param(code, match["output"], id=f"sdk.md:{line}"))
    return found


@pytest.fixture(scope="module")
def docs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """Models named as a reader would meet them, served by the scripted providers."""
    config: dict[str, Any] = {
        "version": 2,
        "image_name": "docs",
        "providers": {
            "inference": [{"provider_id": "scripted", "provider_type": "test::scripted"}],
            "agents": [{"provider_id": "agents", "provider_type": "test::scripted-agents"}],
        },
        "metadata_store": {"type": "sqlite", "db_path": str(tmp_path_factory.mktemp("docs") / "registry.db")},
        "models": [
            {"model_id": "Llama3.2-3B-Instruct"},
            {"model_id": "all-MiniLM-L6-v2", "model_type": "embedding"},
        ],
    }
    with live_server(config) as live:
        yield live


def test_the_docs_have_examples() -> None:
    assert len(examples()) >= 10


@pytest.mark.parametrize(("code", "output"), examples())
def test_example_runs(code: str, output: str | None, docs_server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLAMA_STACK_BASE_URL", docs_server.base_url)
    monkeypatch.delenv("LLAMA_STACK_API_KEY", raising=False)
    monkeypatch.delenv("NO_COLOR", raising=False)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, str(DOC), "exec"), {"__name__": "__main__"})
    if output is not None:
        assert printed.getvalue() == output
