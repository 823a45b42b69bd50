"""What the openai SDK raises -> the stack's error vocabulary, and which failures a retry may cure.

Every message names the provider and its URL, and never the API key.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass

import openai

from llama_stack.apis.errors import InvalidRequest, RateLimited, StackError, UpstreamError, UpstreamTimeout

MAX_RETRY_DELAY_S = 8.0
# A Retry-After longer than this is not waited out: the caller gets RateLimited at once.
MAX_RETRY_AFTER_S = 30.0
PROVIDER_DATA = "the request's provider data"


@dataclass(frozen=True)
class Upstream:
    provider_type: str
    url: str
    timeout_s: float

    @property
    def where(self) -> str:
        return f"{self.provider_type} at {self.url}"


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


def _upstream_message(err: openai.APIStatusError) -> str:
    body = err.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        message = inner.get("message") if isinstance(inner, dict) else inner
        if isinstance(message, str) and message:
            return message
    if isinstance(body, str) and body:
        return body[:500]
    return err.response.reason_phrase or "no message"


def translate(err: BaseException, upstream: Upstream, key_source: str | None = None) -> StackError:
    """The typed error a client should see for a failed call to the upstream."""
    if isinstance(err, StackError):
        return err
    where = upstream.where
    if isinstance(err, openai.APITimeoutError) or "Timeout" in type(err).__name__:
        return UpstreamTimeout(f"{where} did not answer within {upstream.timeout_s:g} s")
    if isinstance(err, openai.APIConnectionError):
        cause = err.__cause__ or err
        return UpstreamError(f"cannot reach {where}: {type(cause).__name__}: {cause}")
    if isinstance(err, openai.APIStatusError):
        status, message = err.status_code, _upstream_message(err)
        if status == 429:
            return RateLimited(
                f"{where} is rate limiting requests: {message}", retry_after_s=retry_after(err.response.headers)
            )
        if status in (401, 403):
            text = f"{where} refused the API key from {key_source or 'nowhere (none was given)'}: {message}"
            # A key the client sent is the client's to fix; a configured one is the server's.
            return InvalidRequest(text) if key_source == PROVIDER_DATA else UpstreamError(text)
        if 400 <= status < 500:
            return InvalidRequest(f"{upstream.provider_type} rejected the request (HTTP {status}): {message}")
        return UpstreamError(f"{where} failed with HTTP {status}: {message}")
    if isinstance(err, openai.APIResponseValidationError | ValueError):
        return UpstreamError(f"{where} answered a body that is not the expected JSON")
    if isinstance(err, openai.APIError):
        return UpstreamError(f"{where} reported an error: {err.message}")
    return UpstreamError(f"{where} failed: {type(err).__name__}: {err}")


def retry_delay(err: BaseException, attempt: int, backoff_s: float) -> float | None:
    """How long to wait before retrying a non-streaming call, or None when it must not be retried.

    Connection failures, 429 and 5xx are retried; timeouts are not (the upstream may still be
    working on the first request, and a retry would make the caller wait several timeouts).
    """
    if isinstance(err, openai.APITimeoutError):
        return None
    if isinstance(err, openai.APIStatusError):
        if err.status_code != 429 and err.status_code < 500:
            return None
        after = retry_after(err.response.headers)
        if after is not None:
            return after if after <= MAX_RETRY_AFTER_S else None
    elif not isinstance(err, openai.APIConnectionError):
        return None
    delay = min(backoff_s * 2.0**attempt, MAX_RETRY_DELAY_S)
    return delay * (1.0 - 0.25 * random.random())
