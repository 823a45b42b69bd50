"""Documents as users send them: inline text, http(s) and data: URLs; text, HTML, Markdown, PDF;
and the errors they get for what cannot be read. Provider-independent, so run on inline::faiss."""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from llama_stack.apis.errors import InvalidRequest, PayloadTooLarge, UpstreamTimeout
from llama_stack.distribution.outbound import URLRefused
from llama_stack.distribution.resolver import build_stack
from llama_stack.distribution.spec import parse_run_config
from tests.counting_server import Route, counting_server
from tests.providers.memory.documents_server import BIG_BYTES, PDF_TEXT, documents_server, make_pdf
from tests.providers.memory.harness import MemoryHarness, Servers, doc, run_config


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    with documents_server() as url:
        yield url


@pytest.fixture(scope="module")
async def memory(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[MemoryHarness]:
    state = tmp_path_factory.mktemp("ingestion")
    built = await MemoryHarness.start("faiss", state, servers, ingestion={"fetch_timeout_s": 1.0})
    yield built
    await built.shutdown()


@pytest.fixture
async def kv_bank(memory: MemoryHarness) -> str:
    """A key-value bank: querying a document_id gives back the document's text exactly as stored."""
    return await memory.register({"memory_bank_type": "keyvalue"})


async def stored_text(memory: MemoryHarness, bank: str, document_id: str) -> str:
    response = await memory.query(bank, document_id)
    assert [c.document_id for c in response.chunks] == [document_id]
    return str(response.chunks[0].content)


async def test_http_text_is_fetched(memory: MemoryHarness, kv_bank: str, site: str) -> None:
    await memory.insert(kv_bank, doc("notes", f"{site}/notes.txt"), doc("as-url", {"uri": f"{site}/notes.txt"}))
    assert await stored_text(memory, kv_bank, "notes") == "Plain notes about café owners."
    assert await stored_text(memory, kv_bank, "as-url") == "Plain notes about café owners."


async def test_html_is_reduced_to_its_visible_text(memory: MemoryHarness, kv_bank: str, site: str) -> None:
    await memory.insert(kv_bank, doc("page", f"{site}/page.html"))
    text = await stored_text(memory, kv_bank, "page")
    assert "Lighthouse keepers\n" in text
    assert "They trimmed wicks & polished the Fresnel lens." in text
    assert "tracking" not in text and "color" not in text and "<" not in text


async def test_markdown_is_reduced_to_text(memory: MemoryHarness, kv_bank: str, site: str) -> None:
    await memory.insert(
        kv_bank, doc("kelp", f"{site}/readme.md"), {**doc("inline", "# Title\n\n*soft*"), "mime_type": "text/markdown"}
    )
    text = await stored_text(memory, kv_bank, "kelp")
    assert "Kelp forests" in text and "Giant kelp grows up to half a metre a day." in text
    assert "#" not in text and "*" not in text
    assert await stored_text(memory, kv_bank, "inline") == "Title\n\nsoft"


async def test_pdf_text_is_extracted_from_urls_and_data_urls(memory: MemoryHarness, kv_bank: str, site: str) -> None:
    data_url = "data:application/pdf;base64," + base64.b64encode(make_pdf(PDF_TEXT)).decode()
    await memory.insert(kv_bank, doc("by-url", f"{site}/paper.pdf"), doc("by-data", data_url))
    assert await stored_text(memory, kv_bank, "by-url") == PDF_TEXT
    assert await stored_text(memory, kv_bank, "by-data") == PDF_TEXT


async def test_data_urls_plain_and_base64(memory: MemoryHarness, kv_bank: str) -> None:
    encoded = base64.b64encode("Grüße aus Köln".encode("latin-1")).decode()
    await memory.insert(
        kv_bank,
        doc("percent", "data:," + quote("Hello, data URL!")),
        doc("latin", f"data:text/plain;charset=latin-1;base64,{encoded}"),
        doc("html", "data:text/html," + quote("<p>Only <b>this</b></p><script>not this</script>")),
    )
    assert await stored_text(memory, kv_bank, "percent") == "Hello, data URL!"
    assert await stored_text(memory, kv_bank, "latin") == "Grüße aus Köln"
    assert await stored_text(memory, kv_bank, "html") == "Only this"


async def test_an_explicit_mime_type_wins(memory: MemoryHarness, kv_bank: str, site: str) -> None:
    labelled = {**doc("unlabelled", f"{site}/unlabelled"), "mime_type": "text/html"}
    inline = {**doc("inline-html", "<ul><li>one</li><li>two</li></ul>"), "mime_type": "text/html"}
    await memory.insert(kv_bank, labelled, inline)
    assert "Lighthouse keepers" in await stored_text(memory, kv_bank, "unlabelled")
    assert await stored_text(memory, kv_bank, "inline-html") == "one\n\ntwo"
    with pytest.raises(InvalidRequest, match="unsupported mime_type 'application/octet-stream'"):
        await memory.insert(kv_bank, doc("raw", f"{site}/unlabelled"))


async def test_fetch_failures_name_the_url(memory: MemoryHarness, kv_bank: str, site: str) -> None:
    with pytest.raises(InvalidRequest, match=re.escape("cannot fetch http://127.0.0.1:9/nothing-here")):
        await memory.insert(kv_bank, doc("closed", "http://127.0.0.1:9/nothing-here"))
    with pytest.raises(InvalidRequest, match=re.escape(f"fetching {site}/missing failed with HTTP 404")):
        await memory.insert(kv_bank, doc("missing", f"{site}/missing"))
    with pytest.raises(UpstreamTimeout, match=re.escape(f"fetching {site}/slow.txt timed out after 1s")):
        await memory.insert(kv_bank, doc("slow", f"{site}/slow.txt"))


async def test_documents_over_the_size_limit_are_refused(memory: MemoryHarness, kv_bank: str, site: str) -> None:
    assert BIG_BYTES > 20_000  # the suite's max_document_bytes
    for path in ("/big.txt", "/streamed-big.txt"):
        with pytest.raises(PayloadTooLarge, match=re.escape(f"({site}{path}) is larger than the limit of 20000")):
            await memory.insert(kv_bank, doc("big", site + path))
    big_data = "data:text/plain;base64," + base64.b64encode(b"q" * BIG_BYTES).decode()
    with pytest.raises(PayloadTooLarge, match="document 'big'"):
        await memory.insert(kv_bank, doc("big", big_data))


async def test_unreadable_documents_are_refused(memory: MemoryHarness, kv_bank: str, site: str) -> None:
    with pytest.raises(InvalidRequest, match="unsupported mime_type 'image/png'"):
        await memory.insert(kv_bank, doc("png", f"{site}/picture.png"))
    with pytest.raises(InvalidRequest, match="file:// URLs are not read by the server"):
        await memory.insert(kv_bank, doc("local", "file:///etc/passwd"))
    with pytest.raises(InvalidRequest, match="not valid base64"):
        await memory.insert(kv_bank, doc("bad64", "data:text/plain;base64,@@@"))
    with pytest.raises(InvalidRequest, match="send a PDF as a data: URL"):
        await memory.insert(kv_bank, {**doc("pdf-text", "%PDF-1.4 ..."), "mime_type": "application/pdf"})
    with pytest.raises(InvalidRequest, match="not a readable PDF"):
        await memory.insert(kv_bank, doc("broken", "data:application/pdf;base64," + base64.b64encode(b"nope").decode()))
    with pytest.raises(InvalidRequest, match="images cannot be stored"):
        await memory.insert(kv_bank, doc("image", [{"type": "image", "data": "aGVsbG8="}]))
    assert (await memory.query(kv_bank, "png")).chunks == []


async def test_token_windows_never_split_a_character(memory: MemoryHarness, tmp_path: Path) -> None:
    bank = await memory.vector_bank(chunk_size=5, overlap=2)
    text = "Café ☕ naïve 日本語のテキスト 🙂 façade. " * 6
    await memory.insert(bank, doc("unicode", text))
    chunks = (await memory.query(bank, "café", max_chunks=500)).chunks
    assert len(chunks) > 10
    assert all("\ufffd" not in str(chunk.content) for chunk in chunks)
    assert all(chunk.token_count <= 5 for chunk in chunks)


async def test_loopback_and_metadata_urls_are_refused_by_default_and_never_fetched(
    servers: Servers, tmp_path: Path
) -> None:
    """SSRF: a document naming a loopback URL, as a tenant would, on a stack without an allow-list."""
    config = run_config("faiss", tmp_path, servers)
    del config["server"]
    default = MemoryHarness("faiss", await build_stack(parse_run_config(config, env={})))
    try:
        bank = await default.register({"memory_bank_type": "keyvalue"})
        with counting_server() as secret:
            secret.routes["/admin"] = Route(b"the server's private answer")
            for document in (doc("as-text", f"{secret.url}/admin"), doc("as-url", {"uri": f"{secret.url}/admin"})):
                with pytest.raises(URLRefused) as refused:
                    await default.insert(bank, document)
                assert str(refused.value) == (
                    f"URL {secret.url}/admin is refused: 127.0.0.1 is a loopback address "
                    "(allow it with server.outbound.allow)"
                )
            with pytest.raises(URLRefused, match=re.escape("169.254.169.254 is a link-local address")):
                await default.insert(bank, doc("metadata", "http://169.254.169.254/latest/meta-data/"))
            assert secret.hits == []
        assert (await default.query(bank, "as-text")).chunks == []
    finally:
        await default.shutdown()


async def test_a_redirect_to_loopback_is_refused(memory: MemoryHarness, kv_bank: str) -> None:
    """Allowing one address does not allow what it redirects to."""
    with counting_server() as site, counting_server("127.0.0.2") as inner:
        inner.routes["/secret"] = Route(b"internal")
        site.routes["/go"] = Route(status=302, location=f"{inner.url}/secret")
        with pytest.raises(URLRefused, match=re.escape(f"URL {inner.url}/secret is refused: 127.0.0.2 is a loopback")):
            await memory.insert(kv_bank, doc("hop", f"{site.url}/go"))
        assert site.paths() == ["/go"] and inner.hits == []
