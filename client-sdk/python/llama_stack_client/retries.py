"""When to repeat a call, and how long to wait first.

A call is repeated only where that is safe: a GET (it changes nothing), or any call the server
marked `x-should-retry: true` (the stack marks 408/409/429/5xx-but-501 that way). A POST is never
repeated on the client's own judgement, because the server may already have acted on it; the one
exception is a connection that could not be opened, which the server never saw. A stream is
retried only before its first byte: once chunks flow, a failure is raised to the caller.

The wait honours the server's Retry-After (seconds or an HTTP date), however long, up to the
client's `max_retry_after_s`: a server asking for a longer wait is not retried at all, and its error
is raised at once, because a retry sent before the server's time would be refused again and, under a
quota, would spend another request of it. Without Retry-After the wait backs off exponentially with
jitter. `sleep`, `clock` and `random` are the seams tests use to observe it.
"""

from __future__ import annotations

import email.utils
import math
import random as random_module
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

# Statuses a GET is retried on when the server says nothing either way.
RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
# The longest Retry-After a client waits out by default; a longer one ends the retries.
MAX_RETRY_AFTER_S = 60.0


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 2
    initial_delay_s: float = 0.5
    max_delay_s: float = 8.0
    max_retry_after_s: float = MAX_RETRY_AFTER_S
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

    def delay(self, retries_done: int, response: httpx.Response | None = None) -> float | None:
        """Seconds to wait before retry number `retries_done + 1`; None when the server asked for a
        longer wait than this client waits out, so that the call is not retried."""
        if response is not None:
            asked = self.retry_after(response)
            if asked is not None:
                return asked if asked <= self.max_retry_after_s else None
        return self.backoff(retries_done)

    def backoff(self, retries_done: int) -> float:
        """The wait when the server names none: exponential, capped, with jitter."""
        backoff = min(self.initial_delay_s * 2.0**retries_done, self.max_delay_s)
        # Jitter spreads out clients that failed together, so they do not return together.
        return backoff * (1.0 - 0.25 * self.random())

    def retry_after(self, response: httpx.Response) -> float | None:
        """The server's wish in seconds (never negative), from `retry-after-ms`, or `retry-after` in
        seconds or as an HTTP date; None when absent or unreadable (NaN included)."""
        millis = _number(response.headers.get("retry-after-ms"))
        if millis is not None:
            return max(0.0, millis / 1000.0)
        value = response.headers.get("retry-after")
        if value is None:
            return None
        seconds = _number(value)
        if seconds is not None:
            return max(0.0, seconds)
        try:
            moment = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        return max(0.0, moment.timestamp() - self.clock())


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return None if math.isnan(number) else number
