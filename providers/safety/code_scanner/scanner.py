"""The CodeShield shield: finds the code in the last message (fenced blocks, each in its
language, or the whole text; code_interpreter calls as Python) and scans it with CodeShield's
insecure-code detector (regexes, then semgrep rules where a prescan says they may match)."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass
from typing import Any

from codeshield.insecure_code_detector import insecure_code_detector, languages
from codeshield.insecure_code_detector.issues import Issue, Severity
from codeshield.insecure_code_detector.languages import Language
from codeshield.insecure_code_detector.usecases import UseCase

from llama_stack.apis.common import CompletionMessage, SafetyViolation, content_text
from llama_stack.apis.errors import UpstreamError
from llama_stack.apis.safety import RunShieldRequest, RunShieldResponse

from .config import CodeScannerConfig

log = logging.getLogger(__name__)

FENCE = re.compile(r"```[ \t]*([\w+#.-]*)[^\n]*\n(.*?)```", re.DOTALL)
LANGUAGE_TAGS: dict[str, Language] = {
    **{tag: Language.PYTHON for tag in ("python", "py", "python3", "py3")},
    **{tag: Language.JAVASCRIPT for tag in ("javascript", "js", "jsx", "node", "typescript", "ts", "tsx")},
    **{tag: Language.CPP for tag in ("cpp", "c++", "cc", "cxx", "hpp")},
    **{tag: Language.CSHARP for tag in ("csharp", "cs", "c#")},
    **{tag: Language.RUST for tag in ("rust", "rs")},
    "c": Language.C,
    "java": Language.JAVA,
    "php": Language.PHP,
}
# Must be caught through semgrep (not a regex): proves semgrep-core really scans.
SELF_TEST_SAMPLE = "import subprocess\ndef run(user_input):\n    subprocess.call('ls ' + user_input, shell=True)\n"


@dataclass(frozen=True)
class CodeBlock:
    code: str
    language: Language | None  # None: unknown, scanned with every language's rules


def code_blocks(request: RunShieldRequest) -> list[CodeBlock]:
    message = request.messages[-1]
    text = content_text(message.content)
    fenced = FENCE.findall(text)
    blocks = [CodeBlock(code, LANGUAGE_TAGS.get(tag.lower())) for tag, code in fenced if code.strip()]
    if not fenced and text.strip():
        blocks.append(CodeBlock(text, None))
    if isinstance(message, CompletionMessage):
        for call in message.tool_calls:
            code = call.arguments.get("code")
            if isinstance(code, str) and code.strip():
                blocks.append(CodeBlock(code, Language.PYTHON))
    return blocks


async def scan(block: CodeBlock) -> list[tuple[Issue, Language]]:
    """Every issue CodeShield finds; unlike CodeShield.scan_code, a failing scanner raises instead
    of reporting the code as clean."""
    targets = [block.language] if block.language else languages.get_supported_languages()
    found = await asyncio.gather(
        *(insecure_code_detector.analyze(language, block.code, usecase=UseCase.CODESHIELD) for language in targets)
    )
    return [(issue, language) for language, issues in zip(targets, found, strict=True) for issue in issues or []]


class CodeScannerShield:
    def __init__(self, config: CodeScannerConfig) -> None:
        self.config = config

    @classmethod
    async def start(cls, config: CodeScannerConfig) -> CodeScannerShield:
        shield = cls(config)
        if config.self_test:
            started = time.perf_counter()
            issues = await scan(CodeBlock(SELF_TEST_SAMPLE, Language.PYTHON))
            if not issues:
                raise RuntimeError(
                    "CodeShield found nothing in a known-insecure sample: semgrep must be exactly 1.100.0 "
                    "(pip install 'semgrep==1.100.0'; newer versions silently scan nothing)"
                )
            log.info("CodeShield self-test passed in %.0f ms", (time.perf_counter() - started) * 1000)
        return shield

    async def run_shield(self, request: RunShieldRequest) -> RunShieldResponse:
        blocks = code_blocks(request)
        try:
            results = await asyncio.gather(*(scan(block) for block in blocks))
        except Exception as e:  # a scanner failure must not pass code unchecked
            log.exception("CodeShield scan failed")
            raise UpstreamError(f"the code scanner failed: {type(e).__name__}") from e
        findings = _unique([finding for result in results for finding in result])
        if not findings:
            return RunShieldResponse()
        blocking = any(_rank(issue) >= _rank_of(self.config.block_severity) for issue, _ in findings)
        kinds = list(dict.fromkeys(_pattern_id(issue) for issue, _ in findings))
        cwes = ", ".join(dict.fromkeys(issue.cwe_id for issue, _ in findings))
        return RunShieldResponse(
            violation=SafetyViolation(
                violation_level="error" if blocking else "warn",
                user_message=f"I can't share that code: it was flagged as insecure ({cwes})."
                if blocking
                else f"The code may be insecure ({cwes}).",
                metadata={"violation_type": ",".join(kinds), "issues": [_describe(i, lang) for i, lang in findings]},
            )
        )


def _severity(issue: Issue) -> str:
    # Regex findings carry a Severity; semgrep findings the rule's raw string ("WARNING", "ERROR").
    return str(getattr(issue.severity, "value", issue.severity)).lower()


def _rank_of(severity: str) -> int:
    return {Severity.ERROR.value: 2, Severity.WARNING.value: 1}.get(severity, 0)


def _rank(issue: Issue) -> int:
    return _rank_of(_severity(issue))


def _pattern_id(issue: Issue) -> str:
    # semgrep prefixes a rule id with its rules file's path, dotted, relative to the working directory.
    return (issue.pattern_id or issue.cwe_id or "").rsplit(".", 1)[-1]


def _unique(findings: list[tuple[Issue, Language]]) -> list[tuple[Issue, Language]]:
    seen: dict[tuple[Any, ...], tuple[Issue, Language]] = {}
    for issue, language in findings:
        seen.setdefault((_pattern_id(issue), issue.cwe_id, issue.line), (issue, language))
    return list(seen.values())


def _describe(issue: Issue, language: Language) -> dict[str, Any]:
    return {
        "pattern_id": _pattern_id(issue),
        "cwe_id": issue.cwe_id,
        "severity": _severity(issue),
        "description": issue.description,
        "line": issue.line,
        "language": language.value,
        "analyzer": str(getattr(issue.analyzer, "value", issue.analyzer)),
    }
