"""A kvstore whose backend outages surface as one typed error (StoreUnavailable, 503) naming
the store, instead of a driver exception that the server could only call an internal error."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from llama_stack.apis.errors import StoreUnavailable
from llama_stack.distribution.store.api import KVStore

T = TypeVar("T")


class GuardedKVStore:
    def __init__(self, store: KVStore, name: str, outages: tuple[type[BaseException], ...]) -> None:
        self.store = store
        self.name = name
        self.outages = outages

    async def _call(self, operation: Callable[[], Awaitable[T]]) -> T:
        try:
            return await operation()
        except self.outages as e:
            raise StoreUnavailable(f"the {self.name} is unavailable ({type(e).__name__}); retry later") from e

    async def get(self, key: str) -> str | None:
        return await self._call(lambda: self.store.get(key))

    async def set(self, key: str, value: str) -> None:
        await self._call(lambda: self.store.set(key, value))

    async def delete(self, key: str) -> None:
        await self._call(lambda: self.store.delete(key))

    async def values_in_range(self, start_key: str, end_key: str) -> list[str]:
        return await self._call(lambda: self.store.values_in_range(start_key, end_key))

    async def keys_with_prefix(self, prefix: str) -> list[str]:
        return await self._call(lambda: self.store.keys_with_prefix(prefix))

    async def increment(self, key: str, by: int = 1, ttl_s: float | None = None) -> int:
        return await self._call(lambda: self.store.increment(key, by, ttl_s))

    async def counter(self, key: str) -> int:
        return await self._call(lambda: self.store.counter(key))

    async def close(self) -> None:
        await self.store.close()
