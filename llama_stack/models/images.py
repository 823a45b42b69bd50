"""Images in messages: fetch http(s) URLs once, so prompts only ever see inline bytes.

An image may come as base64 `data`, a `data:` URL or an http(s) URL. `inline_images` downloads
the URLs (with a size limit and a timeout, failing with an error that names the URL) and gives
back the messages with every image as base64 `data`, ready for the chat format.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence

import httpx

from llama_stack.apis.common import ImageContentItem, InterleavedContent, Message, UserMessage
from llama_stack.apis.errors import InvalidRequest

MAX_IMAGE_BYTES = 20 * 1024 * 1024
FETCH_TIMEOUT_S = 15.0


def image_bytes(item: ImageContentItem) -> bytes:
    """The bytes of an inline image (base64 `data` or a data: URL)."""
    try:
        if item.data is not None:
            return base64.b64decode(item.data, validate=True)
        if item.url is not None and item.url.uri.startswith("data:"):
            header, _, payload = item.url.uri.partition(",")
            if not header.endswith(";base64"):
                raise InvalidRequest("a data: URL image must be base64 encoded (data:image/png;base64,...)")
            return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidRequest(f"image content is not valid base64: {exc}") from exc
    if item.url is not None:
        raise InvalidRequest(f"image URL {item.url.uri} was not fetched: only http(s) and data: URLs are supported")
    raise InvalidRequest("image content has neither `data` nor `url`")


async def fetch_image(url: str, *, client: httpx.AsyncClient | None = None, max_bytes: int = MAX_IMAGE_BYTES) -> bytes:
    """GET an image, refusing more than `max_bytes`; InvalidRequest names the URL on failure."""
    own_client = client is None
    http = client or httpx.AsyncClient(timeout=FETCH_TIMEOUT_S, follow_redirects=True)
    try:
        async with http.stream("GET", url) as response:
            if response.status_code != 200:
                raise InvalidRequest(f"could not fetch image {url}: HTTP {response.status_code}")
            declared = response.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > max_bytes:
                raise InvalidRequest(f"image {url} is {declared} bytes; the limit is {max_bytes}")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > max_bytes:
                    raise InvalidRequest(f"image {url} is larger than the limit of {max_bytes} bytes")
            return bytes(body)
    except httpx.TimeoutException as exc:
        raise InvalidRequest(f"could not fetch image {url}: timed out after {FETCH_TIMEOUT_S:g}s") from exc
    except httpx.HTTPError as exc:
        raise InvalidRequest(f"could not fetch image {url}: {exc}") from exc
    finally:
        if own_client:
            await http.aclose()


def _is_remote(item: ImageContentItem) -> bool:
    return item.data is None and item.url is not None and item.url.uri.startswith(("http://", "https://"))


async def _inline_content(content: InterleavedContent, client: httpx.AsyncClient) -> InterleavedContent:
    if isinstance(content, ImageContentItem):
        if not _is_remote(content):
            return content
        assert content.url is not None
        data = await fetch_image(content.url.uri, client=client)
        return ImageContentItem(data=base64.b64encode(data).decode("ascii"))
    if isinstance(content, list):
        return [
            item if not isinstance(item, ImageContentItem) else await _inline_item(item, client) for item in content
        ]
    return content


async def _inline_item(item: ImageContentItem, client: httpx.AsyncClient) -> ImageContentItem:
    inlined = await _inline_content(item, client)
    assert isinstance(inlined, ImageContentItem)
    return inlined


def has_remote_image(messages: Sequence[Message]) -> bool:
    def remote(content: InterleavedContent | None) -> bool:
        items = content if isinstance(content, list) else [content]
        return any(isinstance(i, ImageContentItem) and _is_remote(i) for i in items)

    return any(remote(m.content) or (isinstance(m, UserMessage) and remote(m.context)) for m in messages)


async def inline_images(messages: Sequence[Message], *, client: httpx.AsyncClient | None = None) -> list[Message]:
    """The messages with every http(s) image URL replaced by the downloaded bytes."""
    if not has_remote_image(messages):
        return list(messages)
    own_client = client is None
    http = client or httpx.AsyncClient(timeout=FETCH_TIMEOUT_S, follow_redirects=True)
    try:
        result: list[Message] = []
        for message in messages:
            update: dict[str, InterleavedContent] = {"content": await _inline_content(message.content, http)}
            if isinstance(message, UserMessage) and message.context is not None:
                update["context"] = await _inline_content(message.context, http)
            result.append(message.model_copy(update=update))
        return result
    finally:
        if own_client:
            await http.aclose()
