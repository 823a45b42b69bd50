"""The models an in-process inference provider has loaded (transformers, sentence-transformers,
universal-sentence-encoder): each loads once, in a worker thread, however many registered
identifiers name it, and is let go when the last of them is unregistered."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class LoadedModels(Generic[T]):
    def __init__(self, load: Callable[[str], T]) -> None:
        self._load = load  # provider_resource_id -> the loaded model (blocking: run in a thread)
        self.by_resource: dict[str, T] = {}
        self._identifiers: dict[str, str] = {}  # registered identifier -> provider_resource_id
        self._lock = asyncio.Lock()  # two registrations of one new model load it once

    async def register(self, identifier: str, resource_id: str) -> T:
        async with self._lock:
            loaded = self.by_resource.get(resource_id)
            if loaded is None:
                loaded = self.by_resource[resource_id] = await asyncio.to_thread(self._load, resource_id)
        self._identifiers[identifier] = resource_id
        return loaded

    def unregister(self, model_id: str) -> T | None:
        """The model to release when `model_id` (an identifier, or a resource id itself) was the
        last name in use for it; None when it is unknown or another identifier still uses it."""
        resource_id = self._identifiers.pop(model_id, None)
        if resource_id is None and model_id in self.by_resource:
            resource_id = model_id
            self._identifiers = {k: v for k, v in self._identifiers.items() if v != model_id}
        if resource_id is None or resource_id in self._identifiers.values():
            return None
        return self.by_resource.pop(resource_id, None)

    def clear(self) -> list[T]:
        """Every loaded model, forgotten here: the caller releases them."""
        models = list(self.by_resource.values())
        self.by_resource.clear()
        self._identifiers.clear()
        return models
