"""Turn a MemoryBankDocument into plain text: inline content, data: URLs and http(s) URLs, in plain
text, Markdown, HTML or PDF. Every failure is a typed error naming the document (and its URL)."""

from __future__ import annotations

import base64
import binascii
import mimetypes
import re
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes, urlsplit

from llama_stack.apis.common import URL, content_has_image, content_text
from llama_stack.apis.errors import InvalidRequest, PayloadTooLarge, UpstreamTimeout
from llama_stack.apis.memory import MemoryBankDocument
from llama_stack.distribution.outbound import BodyTooLarge, OutboundPolicy, URLRefused, fetch

from .config import IngestionConfig
from .text_formats import html_to_text, markdown_to_text, pdf_to_text

# A string document that is exactly one URL is fetched, as the Llama Stack server does.
_URL_STRING = re.compile(r"^(https?://|data:|file://)\S+$", re.IGNORECASE)
_TEXT_LIKE = ("application/json", "application/xml", "application/x-yaml", "application/yaml")


@dataclass(frozen=True)
class Payload:
    data: bytes
    mime_type: str | None
    charset: str | None


def _split_content_type(value: str | None) -> tuple[str | None, str | None]:
    if not value:
        return None, None
    parts = [part.strip() for part in value.split(";")]
    charset = None
    for part in parts[1:]:
        name, _, param = part.partition("=")
        if name.strip().lower() == "charset" and param:
            charset = param.strip().strip('"')
    return (parts[0].lower() or None), charset


def _too_large(what: str, limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"{what} is larger than the limit of {limit} bytes (max_document_bytes)")


def parse_data_url(uri: str, limit: int, what: str) -> Payload:
    header, comma, body = uri[len("data:") :].partition(",")
    if not comma:
        raise InvalidRequest(f"{what}: malformed data: URL (no comma)")
    fields = header.split(";")
    is_base64 = fields[-1].lower() == "base64"
    if is_base64:
        fields = fields[:-1]
    mime_type, charset = _split_content_type(";".join(fields))
    if is_base64:
        if len(body) * 3 // 4 > limit:
            raise _too_large(what, limit)
        try:
            data = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError) as e:
            raise InvalidRequest(f"{what}: the data: URL is not valid base64 ({e})") from e
    else:
        data = unquote_to_bytes(body)
    if len(data) > limit:
        raise _too_large(what, limit)
    return Payload(data, mime_type or "text/plain", charset)


async def fetch_url(uri: str, outbound: OutboundPolicy, config: IngestionConfig, what: str) -> Payload:
    """GET the document under the server's outbound policy (a refused URL is never contacted)."""
    limit = config.max_document_bytes
    try:
        fetched = await fetch(uri, outbound, max_bytes=limit, timeout_s=config.fetch_timeout_s)
    except URLRefused:
        raise  # it names the URL and the rule
    except BodyTooLarge as e:
        raise _too_large(f"{what} ({e.url})", e.limit) from e
    except UpstreamTimeout as e:
        raise UpstreamTimeout(f"{what}: {e.message}") from e
    except InvalidRequest as e:
        raise InvalidRequest(f"{what}: {e.message}") from e
    if fetched.status >= 400:
        raise InvalidRequest(f"{what}: fetching {uri} failed with HTTP {fetched.status}")
    mime_type, charset = _split_content_type(fetched.content_type)
    if mime_type in (None, "application/octet-stream"):
        mime_type = mimetypes.guess_type(urlsplit(fetched.url).path)[0] or mime_type
    return Payload(fetched.body, mime_type, charset)


def _decode(payload: Payload) -> str:
    charset = payload.charset or "utf-8"
    try:
        return payload.data.decode(charset, errors="replace")
    except LookupError:
        return payload.data.decode("utf-8", errors="replace")


def payload_text(payload: Payload, mime_type: str, what: str) -> str:
    if mime_type == "application/pdf":
        return pdf_to_text(payload.data, what)
    if mime_type in ("text/html", "application/xhtml+xml"):
        return html_to_text(_decode(payload))
    if mime_type in ("text/markdown", "text/x-markdown"):
        return markdown_to_text(_decode(payload))
    if mime_type.startswith("text/") or mime_type in _TEXT_LIKE:
        return _decode(payload)
    raise InvalidRequest(f"{what}: unsupported mime_type '{mime_type}'; memory banks read text, Markdown, HTML and PDF")


def _inline_text(document: MemoryBankDocument, config: IngestionConfig, what: str) -> str:
    content = document.content
    if isinstance(content, URL):  # handled by document_text; here for the type checker
        raise InvalidRequest(f"{what}: {content.uri} is a URL, not inline content")
    if content_has_image(content):
        raise InvalidRequest(f"{what}: images cannot be stored in a memory bank; send text")
    text = content_text(content)
    if len(text.encode("utf-8")) > config.max_document_bytes:
        raise _too_large(what, config.max_document_bytes)
    mime_type, _ = _split_content_type(document.mime_type)
    if mime_type == "application/pdf":
        raise InvalidRequest(f"{what}: send a PDF as a data: URL (base64) or an http(s) URL, not as text")
    if mime_type in (None, "text/plain"):
        return text
    return payload_text(Payload(text.encode("utf-8"), mime_type, "utf-8"), mime_type, what)


def document_uri(document: MemoryBankDocument) -> str | None:
    if isinstance(document.content, URL):
        return document.content.uri
    if isinstance(document.content, str) and _URL_STRING.match(document.content.strip()):
        return document.content.strip()
    return None


async def document_text(document: MemoryBankDocument, config: IngestionConfig, outbound: OutboundPolicy) -> str:
    """The document's text; InvalidRequest when there is none."""
    what = f"document '{document.document_id}'"
    uri = document_uri(document)
    if uri is None:
        text = _inline_text(document, config, what)
    else:
        scheme = uri.split(":", 1)[0].lower()
        if scheme == "data":
            payload = parse_data_url(uri, config.max_document_bytes, what)
        elif scheme in ("http", "https"):
            payload = await fetch_url(uri, outbound, config, what)
        else:
            raise InvalidRequest(f"{what}: {scheme}:// URLs are not read by the server; send the content itself")
        # An explicit mime_type wins over what the URL or the server says.
        mime_type = _split_content_type(document.mime_type)[0] or payload.mime_type or "text/plain"
        text = payload_text(payload, mime_type, what)
    if not text.strip():
        raise InvalidRequest(f"{what} is empty: it has no text to store")
    return text
