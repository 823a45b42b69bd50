"""Deleting documents (what detaching a file from a vector store does), on every memory provider:
the document's chunks leave vector, keyword and hybrid search; other documents stay; the bank
can take the document again; a later insert is not disturbed."""

from __future__ import annotations

import pytest

from llama_stack.apis.errors import MemoryBankNotFound
from llama_stack.apis.memory import DeleteDocumentsRequest
from tests.providers.memory.harness import MemoryHarness, doc

LIGHTHOUSES = [
    doc("keeper", "The lighthouse keeper climbs the spiral stairs every evening.", shelf="a"),
    doc("lamp", "The lighthouse lamp was removed and sent to a museum.", shelf="b"),
    doc("fog", "A foghorn sounds from the lighthouse when the fog rolls in.", shelf="a"),
]


async def test_a_deleted_document_leaves_every_search_mode(harness: MemoryHarness) -> None:
    bank = await harness.vector_bank()
    await harness.insert(bank, *LIGHTHOUSES)
    for mode in ("keyword", "hybrid"):  # builds the keyword index before the delete
        assert "lamp" in await harness.document_ids(bank, "lighthouse lamp museum", mode=mode, max_chunks=5)

    await harness.memory.delete_documents(DeleteDocumentsRequest(bank_id=bank, document_ids=["lamp"]))

    for mode in ("vector", "keyword", "hybrid"):
        found = await harness.document_ids(bank, "lighthouse lamp museum", mode=mode, max_chunks=5)
        assert "lamp" not in found and {"keeper", "fog"} <= set(found), mode
    assert await harness.document_ids(bank, "lighthouse", max_chunks=5, filters={"shelf": "b"}) == []

    await harness.insert(bank, doc("lamp", "A new lighthouse lamp was installed in spring.", shelf="b"))
    assert (await harness.document_ids(bank, "new lamp installed"))[0] == "lamp"


async def test_deleting_an_unknown_document_changes_nothing(harness: MemoryHarness) -> None:
    bank = await harness.vector_bank()
    await harness.insert(bank, *LIGHTHOUSES)
    await harness.memory.delete_documents(DeleteDocumentsRequest(bank_id=bank, document_ids=["nope"]))
    assert sorted(await harness.document_ids(bank, "lighthouse", max_chunks=5)) == ["fog", "keeper", "lamp"]


async def test_deleting_from_a_missing_bank_is_404(harness: MemoryHarness) -> None:
    with pytest.raises(MemoryBankNotFound):
        await harness.memory.delete_documents(DeleteDocumentsRequest(bank_id="missing-bank", document_ids=["x"]))
