"""inline::code-scanner: Meta's CodeShield (regex and semgrep rules for insecure code) as a shield.
Needs the `codeshield` package and semgrep==1.100.0 (newer semgrep silently scans nothing)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from llama_stack.distribution.provider import Api, Deps, ProviderSpec, SafetySpec

from .config import CodeScannerConfig

if TYPE_CHECKING:
    from .scanner import CodeScannerShield


def _use_semgrep_core(path: str) -> None:
    """CodeShield looks for semgrep-core in the semgrep package, then on PATH."""
    binary = Path(path).expanduser()
    if not binary.is_file():
        raise ValueError(f"semgrep_core_path: {binary} is not a file")
    os.environ["PATH"] = f"{binary.parent}{os.pathsep}{os.environ.get('PATH', '')}"


async def get_provider_impl(config: CodeScannerConfig, deps: Deps) -> CodeScannerShield:
    if config.semgrep_core_path:
        _use_semgrep_core(config.semgrep_core_path)
    try:
        from .scanner import CodeScannerShield
    except Exception as e:  # codeshield raises a bare Exception when semgrep-core is missing
        raise RuntimeError(f"CodeShield cannot start: {e} (pip install 'semgrep==1.100.0')") from e
    return await CodeScannerShield.start(config)


provider_spec: SafetySpec[CodeScannerConfig] = ProviderSpec(
    api=Api.safety,
    provider_type="inline::code-scanner",
    config_class=CodeScannerConfig,
    factory=get_provider_impl,
    description="CodeShield: flags insecure code (weak hashing, shell injection, eval, SQL injection, ...) "
    "in messages and code_interpreter calls",
    required_modules=("codeshield",),
    # semgrep 1.100.0 pins rich and opentelemetry versions the server cannot use, and codeshield
    # would pull the newest semgrep (which scans nothing): both stay out of the server's venv.
    install_hint="pip install --no-deps codeshield, and install semgrep==1.100.0 in a venv of its own "
    "with its semgrep-core on PATH (or set semgrep_core_path); scripts/test.sh shows how",
)

__all__ = ["CodeScannerConfig", "get_provider_impl", "provider_spec"]
