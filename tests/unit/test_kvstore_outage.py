"""A kvstore whose server goes away answers with one typed error naming the store (503), and
recovers when the server is back."""

from __future__ import annotations

from pathlib import Path

import pytest

from llama_stack.apis.errors import StoreUnavailable
from llama_stack.distribution.store import RedisKVStoreConfig, kvstore_from_config
from tests.servers import _start_redis, _stop


async def test_a_redis_outage_is_a_typed_error_naming_the_store(tmp_path: Path) -> None:
    server, port = _start_redis(tmp_path)
    store = await kvstore_from_config(RedisKVStoreConfig(url=f"redis://127.0.0.1:{port}/0"))
    try:
        await store.set("k", "v")
        _stop(server)
        with pytest.raises(StoreUnavailable, match=rf"redis kvstore at .*127\.0\.0\.1:{port}.*retry later"):
            await store.get("k")
    finally:
        await store.close()
