"""The lone-surrogate check sees escapes split across body chunks at any position."""

from __future__ import annotations

import pytest

from llama_stack.server.middleware import CARRY, lone_surrogate


def found_in_two_chunks(body: bytes, split: int) -> bool:
    first, second = body[:split], body[split:]
    return lone_surrogate(b"", first, last=False) or lone_surrogate(first[-CARRY:], second, last=True)


@pytest.mark.parametrize(
    ("text", "lone"),
    [
        (b"\\ud83d\\ude00", False),  # a pair: one emoji
        (b"\\\\ud800", False),  # an escaped backslash, then plain text
        (b"x\\ud800y", True),
        (b"x\\udc00", True),
        (b"\\ud800\\u0041", True),
        (b"\\ud800", True),  # at the very end of the text
    ],
)
def test_split_anywhere(text: bytes, lone: bool) -> None:
    body = b'{"content": "' + text + b'"}'
    assert {found_in_two_chunks(body, split) for split in range(len(body) + 1)} == {lone}
