"""Quotas per API key: requests per minute and tokens per day, counted in the kvstore.

Both are fixed-window counters keyed by their window (`quota:rpm:<key>:<minute>`,
`quota:tpd:<key>:<day>`, minutes and days counted from the Unix epoch, so UTC days), incremented
with the store's atomic `increment`: replicas that share the store (Redis, Postgres) share the
counts. A fixed window lets a client make up to twice its rate across a window boundary; in
exchange a check is one round trip and the counter expires by itself.

Requests are counted as they arrive, refused ones included. Tokens are charged after each
inference call from the `usage` its provider reports (prompt + completion tokens); a request is
refused once the day's count has reached the limit, so the call that crosses the limit finishes.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from llama_stack.distribution.spec import QuotaConfig, QuotaLimits
from llama_stack.distribution.store import KVStore, kvstore_from_config

MINUTE_S = 60
DAY_S = 86_400


@dataclass(frozen=True)
class Refusal:
    """Why a request is refused: the message for the client and when to come back."""

    limit: str
    message: str
    retry_after_s: float


class Quotas:
    def __init__(self, config: QuotaConfig, default_store: KVStore) -> None:
        self.config = config
        self._store: KVStore | None = None if config.store is not None else default_store
        self._owns_store = config.store is not None
        self._opening = asyncio.Lock()
        self._limits: dict[str, QuotaLimits] = {name: config.limits_for(name) for name in config.per_key}

    def limits(self, name: str) -> QuotaLimits:
        return self._limits.get(name, self.config)

    @property
    def counts_tokens(self) -> bool:
        """Whether any key has a token limit (only then is every inference call's usage charged)."""
        return self.config.tokens_per_day is not None or any(
            limits.tokens_per_day is not None for limits in self._limits.values()
        )

    async def store(self) -> KVStore:
        if self._store is None:
            async with self._opening:
                if self._store is None:
                    assert self.config.store is not None
                    self._store = await kvstore_from_config(self.config.store)
        return self._store

    async def close(self) -> None:
        if self._owns_store and self._store is not None:
            await self._store.close()
            self._store = None

    async def admit(self, name: str, uses_tokens: bool) -> Refusal | None:
        """Count one request of key `name`; a Refusal when it is over a limit."""
        limits = self.limits(name)
        now = time.time()
        if limits.requests_per_minute is not None:
            window = int(now // MINUTE_S)
            count = await (await self.store()).increment(f"quota:rpm:{name}:{window}", 1, ttl_s=2 * MINUTE_S)
            if count > limits.requests_per_minute:
                wait = MINUTE_S - now % MINUTE_S
                return Refusal(
                    "requests_per_minute",
                    f"rate limit reached: API key '{name}' may make {limits.requests_per_minute} requests per "
                    f"minute; retry in {wait:.0f} s",
                    wait,
                )
        if uses_tokens and limits.tokens_per_day is not None:
            used = await (await self.store()).counter(_day_key(name, now))
            if used >= limits.tokens_per_day:
                wait = DAY_S - now % DAY_S
                return Refusal(
                    "tokens_per_day",
                    f"token quota reached: API key '{name}' has used {used} of its {limits.tokens_per_day} tokens "
                    f"for today (UTC); retry in {wait:.0f} s",
                    wait,
                )
        return None

    async def charge(self, name: str, tokens: int) -> None:
        """Add an inference call's tokens to the day's count of key `name`."""
        if tokens > 0 and self.limits(name).tokens_per_day is not None:
            await (await self.store()).increment(_day_key(name, time.time()), tokens, ttl_s=2 * DAY_S)


def _day_key(name: str, now: float) -> str:
    return f"quota:tpd:{name}:{int(now // DAY_S)}"
