"""What a call to the upstream can fail with -> the stack's error vocabulary, and which failures a
retry may cure.

The HTTP layer (client.py) raises httpcore's errors as they come and `StatusError` for an
answer with an error status; `translate` turns either into a StackError. Every message names the
provider and its URL, and never the API key.
"""

from __future__ import annotations

import email.utils
import json
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpcore

from llama_stack.apis.errors import InvalidRequest, RateLimited, StackError, UpstreamError, UpstreamTimeout

MAX_RETRY_DELAY_S = 8.0
# A Retry-After longer than this is not waited out: the caller gets RateLimited at once.
MAX_RETRY_AFTER_S = 30.0
PROVIDER_DATA = "the request's provider data"
# Failures to connect, or of the connection while a call is under way (httpcore's vocabulary).
TRANSPORT_ERRORS = (
    httpcore.NetworkError,
    httpcore.ProtocolError,
    httpcore.ProxyError,
    httpcore.UnsupportedProtocol,
    httpcore.ConnectionNotAvailable,
)


@dataclass(frozen=True)
class Upstream:
    provider_type: str
    url: str
    timeout_s: float

    @property
    def where(self) -> str:
        return f"{self.provider_type} at {self.url}"


class StatusError(Exception):
    """The upstream answered with an HTTP error status; `body` is its JSON (or text) body."""

    def __init__(self, status: int, body: bytes, headers: Mapping[str, str], reason: str = "") -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.headers = headers
        self.reason = reason
        self.body: Any
        try:
            self.body = json.loads(body)
        except ValueError:
            self.body = body.decode("utf-8", "replace").strip()

    @property
    def message(self) -> str:
        """The upstream's own words: OpenAI's `{"error": {"message": ...}}`, TGI's `{"error": "..."}`,
        or the start of a body that is not JSON."""
        body = self.body
        if isinstance(body, dict):
            inner = body.get("error", body)
            message = inner.get("message") if isinstance(inner, dict) else inner
            if isinstance(message, str) and message:
                return message
        if isinstance(body, str) and body:
            return body[:500]
        return self.reason or "no message"


class StreamError(Exception):
    """An error the upstream reported inside a stream (`data: {"error": {...}}`)."""


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from Retry-After-Ms / Retry-After (seconds or an HTTP date), when given."""
    for header, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(header)
        if value is None:
            continue
        try:
            return max(0.0, float(value) / divisor)
        except ValueError:
            parsed = email.utils.parsedate_tz(value)
            if parsed is not None:
                return max(0.0, email.utils.mktime_tz(parsed) - time.time())
    return None


def translate(
    err: BaseException, upstream: Upstream, key_source: str | None = None, *, streaming: bool = False
) -> StackError:
    """The typed error a client should see for a failed call to the upstream. `streaming`: the
    failure came after the stream had begun (a dropped connection there is not "cannot reach")."""
    if isinstance(err, StackError):
        return err
    where = upstream.where
    if isinstance(err, httpcore.TimeoutException):
        return UpstreamTimeout(f"{where} did not answer within {upstream.timeout_s:g} s")
    if isinstance(err, TRANSPORT_ERRORS):
        if streaming:
            return UpstreamError(f"{where} failed mid-stream: {type(err).__name__}: {err}")
        return UpstreamError(f"cannot reach {where}: {type(err).__name__}: {err}")
    if isinstance(err, StatusError):
        status, message = err.status, err.message
        if 300 <= status < 400:  # redirects are not followed: a POST must not silently change hosts
            to = f" to {err.headers['location']}" if "location" in err.headers else ""
            return UpstreamError(f"{where} redirected the request (HTTP {status}){to}: set the provider's url there")
        if status == 429:
            return RateLimited(f"{where} is rate limiting requests: {message}", retry_after_s=retry_after(err.headers))
        if status in (401, 403):
            text = f"{where} refused the API key from {key_source or 'nowhere (none was given)'}: {message}"
            # A key the client sent is the client's to fix; a configured one is the server's.
            return InvalidRequest(text) if key_source == PROVIDER_DATA else UpstreamError(text)
        if 400 <= status < 500:
            return InvalidRequest(f"{upstream.provider_type} rejected the request (HTTP {status}): {message}")
        return UpstreamError(f"{where} failed with HTTP {status}: {message}")
    if isinstance(err, StreamError):
        return UpstreamError(f"{where} reported an error: {err}")
    if isinstance(err, ValueError | KeyError | TypeError | AttributeError | IndexError):
        # json.loads' errors, and a body whose shape is not OpenAI's.
        return UpstreamError(f"{where} answered a body that is not the expected JSON")
    return UpstreamError(f"{where} failed: {type(err).__name__}: {err}")


def retry_delay(err: BaseException, attempt: int, backoff_s: float) -> float | None:
    """How long to wait before retrying a non-streaming call, or None when it must not be retried.

    Connection failures, 429 and 5xx are retried; timeouts are not (the upstream may still be
    working on the first request, and a retry would make the caller wait several timeouts).
    """
    if isinstance(err, httpcore.TimeoutException):
        return None
    if isinstance(err, StatusError):
        if err.status != 429 and err.status < 500:
            return None
        after = retry_after(err.headers)
        if after is not None:
            return after if after <= MAX_RETRY_AFTER_S else None
    elif not isinstance(err, TRANSPORT_ERRORS):
        return None
    delay = min(backoff_s * 2.0**attempt, MAX_RETRY_DELAY_S)
    return delay * (1.0 - 0.25 * random.random())
