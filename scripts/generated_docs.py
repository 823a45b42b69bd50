"""What the docs generators share: write the page, or with --check say whether it is stale."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path


def write_or_check(
    doc: Path, render: Callable[[], str], module: str, description: str | None, argv: list[str] | None
) -> int:
    """`render()` written to `doc`; with --check, exit status 1 (and nothing written) when the page
    differs from what the code would generate."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help=f"exit 1 if {doc.name} is out of date")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not doc.is_file() or doc.read_text() != text:
            print(f"{doc} is out of date: run python -m {module}", file=sys.stderr)
            return 1
        return 0
    doc.write_text(text)
    print(f"wrote {doc}")
    return 0
