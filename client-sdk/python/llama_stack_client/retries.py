"""When to repeat a call, and how long to wait first.

A call is repeated only where that is safe: a GET (it changes nothing), or any call the server
marked `x-should-retry: true` (the stack marks 408/409/429/5xx-but-501 that way). A POST is never
repeated on the client's own judgement, because the server may already have acted on it; the one
exception is a connection that could not be opened, which the server never saw. A stream is
retried only before its first byte: once chunks flow, a failure is raised to the caller.

The wait honours the server's Retry-After (seconds or an HTTP date) and otherwise backs off
exponentially with jitter. `sleep`, `clock` and `random` are the seams tests use to observe it.
"""

from __future__ import annotations

import email.utils
import random as random_module
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

# Statuses a GET is retried on when the server says nothing either way.
RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
# A Retry-After longer than this is not waited out; the usual backoff applies instead.
MAX_RETRY_AFTER_S = 60.0


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 2
    initial_delay_s: float = 0.5
    max_delay_s: float = 8.0
    clock: Callable[[], float] = time.time
    random: Callable[[], float] = field(default=random_module.random)

    def should_retry_response(self, method: str, response: httpx.Response) -> bool:
        verdict = response.headers.get("x-should-retry")
        if verdict == "true":
            return True
        if verdict == "false":
            return False
        return method == "GET" and response.status_code in RETRYABLE_STATUS

    def should_retry_error(self, method: str, error: httpx.TransportError) -> bool:
        if isinstance(error, httpx.ConnectError | httpx.ConnectTimeout):
            return True  # the request never reached the server
        return method == "GET"

    def delay(self, retries_done: int, response: httpx.Response | None = None) -> float:
        """Seconds to wait before retry number `retries_done + 1`."""
        if response is not None:
            asked = self.retry_after(response)
            if asked is not None and 0 <= asked <= MAX_RETRY_AFTER_S:
                return asked
        backoff = min(self.initial_delay_s * 2.0**retries_done, self.max_delay_s)
        # Jitter spreads out clients that failed together, so they do not return together.
        return backoff * (1.0 - 0.25 * self.random())

    def retry_after(self, response: httpx.Response) -> float | None:
        """The server's wish, from `retry-after-ms`, or `retry-after` in seconds or as an HTTP date."""
        millis = response.headers.get("retry-after-ms")
        if millis is not None:
            try:
                return float(millis) / 1000.0
            except ValueError:
                pass
        value = response.headers.get("retry-after")
        if value is None:
            return None
        try:
            return float(value)
        except ValueError:
            pass
        try:
            moment = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, moment.timestamp() - self.clock())
