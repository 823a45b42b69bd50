"""Images in messages: fetch http(s) URLs once, so prompts only ever see inline bytes.

An image may come as base64 `data`, a `data:` URL or an http(s) URL. `inline_images` downloads
the URLs under the server's outbound policy (no loopback, private or link-local address unless
allow-listed; a size limit and a timeout; an error that names the URL) and gives back the
messages with every image as base64 `data`, ready for the chat format. This is the one image
fetcher: the inference router inlines every request's images with it before any provider sees
them, and providers used on their own call it with the policy their Deps hold.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import TypeVar

from llama_stack.apis.common import ImageContentItem, InterleavedContent, Message, UserMessage, content_has_image
from llama_stack.apis.errors import InvalidRequest, StackError
from llama_stack.apis.inference import ChatCompletionRequest, CompletionRequest
from llama_stack.distribution.outbound import BodyTooLarge, OutboundPolicy, URLRefused, fetch

MAX_IMAGE_BYTES = 20 * 1024 * 1024
FETCH_TIMEOUT_S = 15.0
RequestT = TypeVar("RequestT", ChatCompletionRequest, CompletionRequest)


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


async def fetch_image(url: str, outbound: OutboundPolicy, *, max_bytes: int = MAX_IMAGE_BYTES) -> bytes:
    """GET an image under the server's outbound policy, refusing more than `max_bytes`.
    URLRefused (400) names the rule; any other failure is an InvalidRequest naming the URL."""
    try:
        fetched = await fetch(url, outbound, max_bytes=max_bytes, timeout_s=FETCH_TIMEOUT_S)
    except URLRefused:
        raise
    except BodyTooLarge as exc:
        raise InvalidRequest(f"image {exc.message}") from exc
    except StackError as exc:  # unreachable, timed out, a redirect loop
        reason = exc.message.removeprefix(f"cannot fetch {url}: ")
        raise InvalidRequest(f"could not fetch image {url}: {reason}") from exc
    if fetched.status != 200:
        raise InvalidRequest(f"could not fetch image {url}: HTTP {fetched.status}")
    return fetched.body


def _is_remote(item: ImageContentItem) -> bool:
    return item.data is None and item.url is not None and item.url.uri.startswith(("http://", "https://"))


async def _inline_content(content: InterleavedContent, outbound: OutboundPolicy) -> InterleavedContent:
    if isinstance(content, ImageContentItem):
        return await _inline_item(content, outbound)
    if isinstance(content, list):
        return [
            item if not isinstance(item, ImageContentItem) else await _inline_item(item, outbound) for item in content
        ]
    return content


async def _inline_item(item: ImageContentItem, outbound: OutboundPolicy) -> ImageContentItem:
    if not _is_remote(item):
        return item
    assert item.url is not None
    data = await fetch_image(item.url.uri, outbound)
    return ImageContentItem(data=base64.b64encode(data).decode("ascii"))


def has_remote_image(messages: Sequence[Message]) -> bool:
    def remote(content: InterleavedContent | None) -> bool:
        items = content if isinstance(content, list) else [content]
        return any(isinstance(i, ImageContentItem) and _is_remote(i) for i in items)

    return any(remote(m.content) or (isinstance(m, UserMessage) and remote(m.context)) for m in messages)


async def inline_images(messages: Sequence[Message], outbound: OutboundPolicy | None = None) -> list[Message]:
    """The messages with every http(s) image URL replaced by the downloaded bytes. Without a
    policy, the default one: no loopback, private or link-local address is fetched."""
    if not has_remote_image(messages):
        return list(messages)
    policy = outbound or OutboundPolicy()
    result: list[Message] = []
    for message in messages:
        update: dict[str, InterleavedContent] = {"content": await _inline_content(message.content, policy)}
        if isinstance(message, UserMessage) and message.context is not None:
            update["context"] = await _inline_content(message.context, policy)
        result.append(message.model_copy(update=update))
    return result


async def with_fetched_images(request: RequestT, outbound: OutboundPolicy) -> RequestT:
    """A chat or completion request with its http(s) images downloaded, for the inference router:
    providers then only ever see inline images, and every image URL meets the server's policy."""
    if isinstance(request, ChatCompletionRequest):
        if not has_remote_image(request.messages):
            return request
        return request.model_copy(update={"messages": await inline_images(request.messages, outbound)})
    if isinstance(request, CompletionRequest) and content_has_image(request.content):
        return request.model_copy(update={"content": await _inline_content(request.content, outbound)})
    return request
