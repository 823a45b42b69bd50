"""The memory engine with a per-bank index choice.

MemoryEngine opens a vector bank with its id and dimension only; this subclass first tells the
store which index the bank asked for (its `index`, else the provider's default), so a bad choice
is a 400 before anything is created. (A one-line hook in MemoryEngine.register_memory_bank would
make this class unnecessary.)
"""

from __future__ import annotations

from typing import Any

from llama_stack.apis.memory_banks import MemoryBank, VectorMemoryBank
from llama_stack.distribution.outbound import OutboundPolicy
from llama_stack.distribution.store.api import KVStore

from .config import MemoryProviderConfig
from .engine import MemoryEngine
from .types import VectorStore


class IndexedMemoryEngine(MemoryEngine):
    def __init__(
        self, vectors: VectorStore, kv: KVStore, inference: Any, config: MemoryProviderConfig, outbound: OutboundPolicy
    ) -> None:
        super().__init__(vectors, kv, inference, config.ingestion, outbound)
        self.index = config.index

    async def register_memory_bank(self, bank: MemoryBank) -> MemoryBank:
        if isinstance(bank, VectorMemoryBank):
            self.vectors.choose_index(bank.provider_resource_id, self.index.for_bank(bank.index))
        return await super().register_memory_bank(bank)
