"""Configuration of the CodeShield code scanner (pure pydantic: cheap to import)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class CodeScannerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    block_severity: Literal["warning", "error"] = Field(
        default="warning",
        description="findings of this CodeShield severity or worse make an error-level (blocking) violation; "
        "milder ones a warn-level one. 'error' follows CodeShield's own recommended treatment",
    )
    semgrep_core_path: str | None = Field(
        default=None,
        description="a semgrep-core binary from semgrep==1.100.0 installed elsewhere (e.g. its own venv), "
        "when the semgrep package is not installed beside the server",
    )
    self_test: bool = Field(
        default=True,
        description="scan a known-insecure sample at startup and refuse to start if nothing is found "
        "(a newer semgrep silently scans nothing)",
    )
