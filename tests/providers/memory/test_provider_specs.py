"""What a user sees before any bank exists: the memory providers are cheap to discover, and a
backend that cannot be reached stops startup with a message that names it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from llama_stack.distribution.provider import Api
from llama_stack.distribution.resolver import build_stack
from llama_stack.distribution.spec import ConfigError, parse_run_config
from tests.providers.memory.harness import SPECS, install_memory_providers

install_memory_providers()

HEAVY = ("numpy", "faiss", "sqlite_vec", "psycopg", "pgvector", "chromadb", "qdrant_client", "httpx", "torch")


def test_importing_the_memory_provider_packages_imports_no_backend() -> None:
    code = (
        "import sys\n"
        "from llama_stack.providers.memory import chroma, faiss, pgvector, qdrant, sqlite_vec\n"
        "types = [p.provider_spec.provider_type for p in (faiss, sqlite_vec, pgvector, chroma, qdrant)]\n"
        "types.append(qdrant.remote_provider_spec.provider_type)\n"
        "print(','.join(types))\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.split() == [
        "inline::faiss,inline::sqlite-vec,remote::pgvector,remote::chromadb,inline::qdrant,remote::qdrant"
    ]


def test_every_memory_provider_needs_the_inference_api() -> None:
    assert all(spec.depends_on == (Api.inference,) for spec in SPECS.values())


def config_with(provider_type: str, provider_config: dict[str, Any], tmp_path: Path) -> Any:
    return parse_run_config(
        {
            "version": 2,
            "image_name": "unreachable",
            "providers": {
                "inference": [{"provider_id": "scripted", "provider_type": "test::scripted"}],
                "memory": [{"provider_id": "m", "provider_type": provider_type, "config": provider_config}],
            },
            "metadata_store": {"type": "sqlite", "db_path": str(tmp_path / "registry.db")},
        },
        env={},
    )


@pytest.mark.parametrize(
    ("provider_type", "provider_config", "message"),
    [
        ("remote::pgvector", {"dsn": "postgresql://user@127.0.0.1:9/db"}, "pgvector: cannot connect to 127.0.0.1:9/db"),
        ("remote::chromadb", {"url": "http://127.0.0.1:9"}, "cannot reach the Chroma server at http://127.0.0.1:9"),
        ("remote::qdrant", {"url": "http://127.0.0.1:9"}, "qdrant: cannot open http://127.0.0.1:9"),
    ],
)
async def test_an_unreachable_backend_stops_startup_naming_it(
    provider_type: str, provider_config: dict[str, Any], message: str, tmp_path: Path
) -> None:
    provider_config = {**provider_config, "kvstore": {"type": "sqlite", "db_path": str(tmp_path / "kv.db")}}
    expected = re.escape(f"providers.memory[0] ({provider_type}): failed to start: ") + ".*" + re.escape(message)
    with pytest.raises(ConfigError, match=expected):
        await build_stack(config_with(provider_type, provider_config, tmp_path))


async def test_a_bad_provider_config_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"providers\.memory\[0\]\.config\.persist_dirr"):
        await build_stack(config_with("inline::faiss", {"persist_dirr": "/tmp/x"}, tmp_path))
