"""code_interpreter: runs the model's Python in the sandbox and answers with what it printed and
the images it made, prefixed by a line that says which isolation is active."""

from __future__ import annotations

import base64

from llama_stack.apis.agents import Attachment
from llama_stack.apis.common import ImageContentItem, InterleavedContentItem, TextContentItem, ToolCall

from .sandbox import RunResult, Sandbox
from .toolbox import ToolOutcome


def _section(name: str, text: str, truncated: bool) -> str:
    note = "\n[output truncated]" if truncated else ""
    return f"[{name}]\n{text.rstrip()}{note}\n[/{name}]"


def render_result(isolation: str, result: RunResult) -> str:
    parts = [f"[isolation] {isolation}", f"[status] {result.status}"]
    if result.stdout or result.output_truncated:
        parts.append(_section("stdout", result.stdout, result.output_truncated))
    if result.stderr:
        parts.append(_section("stderr", result.stderr, result.output_truncated))
    if result.images:
        parts.append(f"[images] {len(result.images)} PNG image(s), attached to the answer")
    return "\n".join(parts)


class CodeInterpreterTool:
    name = "code_interpreter"

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    async def run(self, call: ToolCall) -> ToolOutcome:
        code = call.arguments.get("code")
        if not isinstance(code, str) or not code.strip():
            return ToolOutcome("code_interpreter needs a `code` argument holding Python source.")
        plan, result = await self.sandbox.run(code)
        text = render_result(self.sandbox.describe(plan), result)
        images = [ImageContentItem(data=base64.b64encode(png).decode()) for png in result.images]
        if not images:
            return ToolOutcome(text)
        content: list[InterleavedContentItem] = [TextContentItem(text=text), *images]
        attachments = [Attachment(content=image, mime_type="image/png") for image in images]
        return ToolOutcome(content, attachments)
