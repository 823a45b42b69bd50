"""/v1/files driven by the official `openai` SDK over real servers: upload, metadata, content,
pagination, expiry, deletion, limits, two tenants, and a second replica on the same store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.live import LiveServer, live_server

TENANT_A = "tenant-a-key-0123456789"
TENANT_B = "tenant-b-key-0123456789"
ADMIN = "admin-key-0123456789abc"
MAX_REQUEST_BYTES = 2 * 1024 * 1024


def run_config(db_path: Path) -> dict[str, Any]:
    return {
        "version": 2,
        "image_name": "files",
        "providers": {"inference": [{"provider_id": "scripted", "provider_type": "test::scripted"}]},
        "metadata_store": {"type": "sqlite", "db_path": str(db_path)},
        "models": [{"model_id": "echo"}],
        "server": {
            "max_request_bytes": MAX_REQUEST_BYTES,
            "auth": {
                "keys": [
                    {"name": "a", "key": TENANT_A},
                    {"name": "b", "key": TENANT_B, "scopes": {"apis": ["memory", "models"]}},
                    {"name": "root", "key": ADMIN, "admin": True},
                ]
            },
        },
    }


@pytest.fixture(scope="module")
def db_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("files") / "registry.db"


@pytest.fixture(scope="module")
def server(db_path: Path) -> Iterator[LiveServer]:
    with live_server(run_config(db_path)) as live:
        yield live


def client_for(server: LiveServer, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.base_url}/v1", api_key=key, max_retries=0)


@pytest.fixture
def tenant_a(server: LiveServer) -> openai.OpenAI:
    return client_for(server, TENANT_A)


def test_upload_then_read_back(tenant_a: openai.OpenAI) -> None:
    body = b"Paris is the capital of France.\n" * 50_000  # 1.6 MB: stored in three parts
    uploaded = tenant_a.files.create(file=("notes.txt", body), purpose="assistants")
    assert uploaded.id.startswith("file-") and uploaded.object == "file"
    assert (uploaded.filename, uploaded.bytes, uploaded.purpose) == ("notes.txt", len(body), "assistants")
    assert uploaded.expires_at is None

    assert tenant_a.files.retrieve(uploaded.id) == uploaded
    assert tenant_a.files.content(uploaded.id).read() == body

    deleted = tenant_a.files.delete(uploaded.id)
    assert deleted.id == uploaded.id and deleted.deleted
    with pytest.raises(openai.NotFoundError):
        tenant_a.files.retrieve(uploaded.id)
    with pytest.raises(openai.NotFoundError):
        tenant_a.files.content(uploaded.id)


def test_binary_content_is_kept_byte_for_byte(tenant_a: openai.OpenAI) -> None:
    body = bytes(range(256)) * 3
    uploaded = tenant_a.files.create(file=("blob.bin", body), purpose="user_data")
    assert tenant_a.files.content(uploaded.id).read() == body


def test_expires_after_sets_expires_at(tenant_a: openai.OpenAI) -> None:
    uploaded = tenant_a.files.create(
        file=("short.txt", b"soon gone"), purpose="batch", expires_after={"anchor": "created_at", "seconds": 3600}
    )
    assert uploaded.expires_at == uploaded.created_at + 3600


def test_listing_pages_in_creation_order_and_filters_by_purpose(tenant_a: openai.OpenAI) -> None:
    ids = [tenant_a.files.create(file=(f"p{i}.txt", b"x"), purpose="evals").id for i in range(5)]
    newest_first = [f.id for f in tenant_a.files.list(purpose="evals")]
    assert newest_first == ids[::-1]
    oldest_first = [f.id for f in tenant_a.files.list(purpose="evals", order="asc")]
    assert oldest_first == ids

    first_page = tenant_a.files.list(purpose="evals", order="asc", limit=2)
    assert [f.id for f in first_page.data] == ids[:2] and first_page.has_more
    # The SDK's auto-pagination follows `after` through every page.
    assert [f.id for f in tenant_a.files.list(purpose="evals", order="asc", limit=2)] == ids
    assert {str(f.purpose) for f in tenant_a.files.list(purpose="evals")} == {"evals"}


def test_bad_input_is_a_400_naming_the_field(tenant_a: openai.OpenAI, server: LiveServer) -> None:
    with pytest.raises(openai.BadRequestError, match="purpose"):
        tenant_a.files.create(file=("a.txt", b"x"), purpose="wallpaper")  # type: ignore[arg-type]
    with pytest.raises(openai.BadRequestError, match="expires_after"):
        tenant_a.files.create(
            file=("a.txt", b"x"), purpose="batch", expires_after={"anchor": "created_at", "seconds": 5}
        )
    with pytest.raises(openai.BadRequestError, match="limit"):
        tenant_a.files.list(limit=0)
    with pytest.raises(openai.BadRequestError, match="after"):
        tenant_a.files.list(after="file-unknown")
    headers = {"authorization": f"Bearer {TENANT_A}"}
    no_file = httpx.post(
        f"{server.base_url}/v1/files", data={"purpose": "batch"}, files={"x": ("a", b"1")}, headers=headers
    )
    assert no_file.status_code == 400 and "file" in no_file.json()["error"]["message"]
    as_json = httpx.post(f"{server.base_url}/v1/files", json={"purpose": "batch"}, headers=headers)
    assert as_json.status_code == 400 and "multipart/form-data" in as_json.json()["error"]["message"]


def test_an_upload_over_the_limit_is_413_and_stores_nothing(tenant_a: openai.OpenAI) -> None:
    before = {f.id for f in tenant_a.files.list()}
    with pytest.raises(openai.APIStatusError) as refused:
        tenant_a.files.create(file=("big.bin", b"0" * (MAX_REQUEST_BYTES + 1)), purpose="user_data")
    assert refused.value.status_code == 413
    assert {f.id for f in tenant_a.files.list()} == before


def test_another_tenant_sees_404_and_an_admin_sees_all(tenant_a: openai.OpenAI, server: LiveServer) -> None:
    secret = tenant_a.files.create(file=("a-only.txt", b"tenant A's notes"), purpose="assistants")
    tenant_b = client_for(server, TENANT_B)
    with pytest.raises(openai.NotFoundError):
        tenant_b.files.retrieve(secret.id)
    with pytest.raises(openai.NotFoundError):
        tenant_b.files.content(secret.id)
    with pytest.raises(openai.NotFoundError):
        tenant_b.files.delete(secret.id)
    assert secret.id not in {f.id for f in tenant_b.files.list()}
    mine = tenant_b.files.create(file=("b.txt", b"tenant B"), purpose="assistants")
    assert mine.id not in {f.id for f in tenant_a.files.list()}

    admin = client_for(server, ADMIN)
    assert {secret.id, mine.id} <= {f.id for f in admin.files.list()}
    assert admin.files.content(secret.id).read() == b"tenant A's notes"
    assert tenant_a.files.retrieve(secret.id).id == secret.id  # B's attempts deleted nothing


def test_no_key_is_401(server: LiveServer) -> None:
    anonymous = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="not-a-key-000000000", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        anonymous.files.list()


def test_a_second_replica_on_the_same_store_serves_the_file(tenant_a: openai.OpenAI, db_path: Path) -> None:
    uploaded = tenant_a.files.create(file=("shared.txt", b"made on replica one"), purpose="assistants")
    with live_server(run_config(db_path)) as replica:
        other = client_for(replica, TENANT_A)
        assert other.files.retrieve(uploaded.id).filename == "shared.txt"
        assert other.files.content(uploaded.id).read() == b"made on replica one"
        other.files.delete(uploaded.id)
    with pytest.raises(openai.NotFoundError):
        tenant_a.files.retrieve(uploaded.id)
