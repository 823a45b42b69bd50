"""Every ```python block of docs/openai.md runs against a live server (the scripted tool caller
as its chat model, real MiniLM embeddings on FAISS, a scripted Llama Guard, a real MCP server);
where a ```text block follows it, that is what the example must print."""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llama_stack.distribution.registry import install_provider
from tests.live import LiveServer, live_server
from tests.mcp_server import McpTarget, mcp_server
from tests.providers.safety.stacks import install_safety_providers
from tests.tool_caller import TOOL_CALLER_SPEC, agent_stack_config

install_provider(TOOL_CALLER_SPEC)
install_safety_providers()

DOC = Path(__file__).parents[2] / "docs" / "openai.md"
BLOCK = re.compile(r"```python\n(?P<code>.*?)```(?:\s*```text\n(?P<output>.*?)```)?", re.DOTALL)


def examples() -> list[Any]:
    text = DOC.read_text()
    found = []
    for match in BLOCK.finditer(text):
        line = text[: match.start()].count("\n") + 1
        code = "\n" * line + match["code"]  # padded: a traceback points at the doc's own lines
        found.append(pytest.param(code, match["output"], id=f"openai.md:{line}"))
    return found


@pytest.fixture(scope="module")
def mcp() -> Iterator[McpTarget]:
    with mcp_server() as target:
        yield target


@pytest.fixture(scope="module")
def docs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    state = tmp_path_factory.mktemp("openai-docs")
    config = agent_stack_config(state, "Llama3.2-3B-Instruct", {"outbound": {"allow": ["127.0.0.1"]}})
    with live_server(config) as live:
        yield live


def test_the_doc_has_an_example_per_route_family() -> None:
    code = "".join(str(param.values[0]) for param in examples())
    for family in ("files", "vector_stores", "responses", "conversations", "moderations"):
        assert f"client.{family}." in code, family


@pytest.mark.parametrize(("code", "output"), examples())
def test_example_runs(
    code: str, output: str | None, docs_server: LiveServer, mcp: McpTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLAMA_STACK_BASE_URL", docs_server.base_url)
    monkeypatch.setenv("MCP_URL", mcp.url)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, str(DOC), "exec"), {"__name__": "__docs__"})
    if output is not None:
        assert printed.getvalue() == output
