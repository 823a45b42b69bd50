"""Reduce HTML, Markdown and PDF to plain text.

HTML goes through the standard library's parser: scripts, styles and other non-content elements
are skipped, block elements become line breaks, entities are decoded. Markdown is rendered to
HTML by markdown-it (a dependency of rich, so always present) and then reduced the same way.
PDF text is extracted page by page with pypdf, imported only when a PDF arrives.
"""

from __future__ import annotations

import io
import re
from html.parser import HTMLParser

from llama_stack.apis.errors import InvalidRequest, ProviderError

_SKIPPED = frozenset({"script", "style", "noscript", "template", "head", "svg", "iframe", "object"})
_BLOCKS = frozenset(
    {
        "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "figcaption", "figure",
        "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "nav", "ol", "p",
        "pre", "section", "table", "tr", "ul", "title",
    }
)  # fmt: skip
_VOID = frozenset({"br", "hr", "img", "input", "meta", "link", "area", "base", "col", "embed", "source", "wbr"})


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED and tag not in _VOID:
            self.skipping += 1
        elif tag in _BLOCKS:
            self.parts.append("\n")
        elif tag in ("td", "th"):
            self.parts.append(" ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED:
            self.skipping = max(0, self.skipping - 1)
        elif tag in _BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(data)


def _tidy(text: str) -> str:
    lines = (re.sub(r"[ \t\r\f\v]+", " ", line).strip() for line in text.split("\n"))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def html_to_text(html: str) -> str:
    extractor = _TextExtractor()
    extractor.feed(html)
    extractor.close()
    return _tidy("".join(extractor.parts))


def markdown_to_text(markdown: str) -> str:
    from markdown_it import MarkdownIt

    return html_to_text(MarkdownIt("commonmark").render(markdown))


def pdf_to_text(data: bytes, source: str) -> str:
    try:
        from pypdf import PdfReader
        from pypdf.errors import PyPdfError
    except ImportError as e:
        raise ProviderError("reading PDF documents needs pypdf, which is not installed; run: pip install pypdf") from e
    try:
        reader = PdfReader(io.BytesIO(data))
        pages = [page.extract_text() or "" for page in reader.pages]
    except (PyPdfError, ValueError, KeyError, TypeError) as e:
        raise InvalidRequest(f"{source}: not a readable PDF ({e})") from e
    return _tidy("\n\n".join(pages))
