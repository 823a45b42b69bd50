"""Split text into windows of Llama 3 tokens that overlap.

Windows are cut on token boundaries; a window's text is decoded from its tokens' bytes, and a
UTF-8 character split between two windows is dropped from the edge of each rather than turned
into a replacement character.
"""

from __future__ import annotations

from dataclasses import dataclass

from llama_stack.apis.errors import InvalidRequest
from llama_stack.models.chat_format import get_tokenizer


@dataclass(frozen=True)
class TextChunk:
    text: str
    token_count: int


def check_chunking(chunk_size: int, overlap: int) -> None:
    if chunk_size <= 0:
        raise InvalidRequest(f"chunk_size_in_tokens must be positive, not {chunk_size}")
    if overlap < 0 or overlap >= chunk_size:
        raise InvalidRequest(
            f"overlap_size_in_tokens ({overlap}) must be at least 0 and smaller than "
            f"chunk_size_in_tokens ({chunk_size})"
        )


def count_tokens(text: str) -> int:
    return len(get_tokenizer().encode(text, bos=False, eos=False))


def chunk_text(text: str, chunk_size: int, overlap: int) -> list[TextChunk]:
    """Windows of at most `chunk_size` tokens; each starts `chunk_size - overlap` tokens after
    the previous one. The last window ends at the end of the text."""
    check_chunking(chunk_size, overlap)
    tokenizer = get_tokenizer()
    tokens = tokenizer.encode(text, bos=False, eos=False)
    stride = chunk_size - overlap
    chunks: list[TextChunk] = []
    start = 0
    while start < len(tokens):
        window = tokens[start : start + chunk_size]
        piece = tokenizer.model.decode_bytes(window).decode("utf-8", errors="ignore")
        if piece.strip():
            chunks.append(TextChunk(text=piece, token_count=len(window)))
        if start + chunk_size >= len(tokens):
            break
        start += stride
    return chunks
