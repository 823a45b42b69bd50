"""A small HTTP server of test documents (text, HTML, Markdown, PDF, slow, huge, missing), and a
minimal one-page PDF writer, for the ingestion tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def make_pdf(text: str) -> bytes:
    """A valid one-page PDF showing `text` in Helvetica (ASCII only)."""
    escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    stream = f"BT /F1 12 Tf 72 720 Td ({escaped}) Tj ET".encode("ascii")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = b"%PDF-1.4\n"
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return out


HTML = (
    "<html><head><title>Keepers</title><style>p {color: red}</style></head><body>"
    "<script>var tracking = 'do-not-index';</script>"
    "<h1>Lighthouse keepers</h1><p>They trimmed wicks &amp; polished the Fresnel lens.</p></body></html>"
)
MARKDOWN = "# Kelp forests\n\n**Giant kelp** grows up to *half a metre* a day.\n\n- sea otters\n- urchins\n"
PDF_TEXT = "Sundials tell the time from the shadow of a gnomon."
BIG_BYTES = 30_000

ROUTES: dict[str, tuple[str, bytes]] = {
    "/notes.txt": ("text/plain; charset=utf-8", "Plain notes about café owners.".encode()),
    "/page.html": ("text/html; charset=utf-8", HTML.encode()),
    "/readme.md": ("text/markdown", MARKDOWN.encode()),
    "/paper.pdf": ("application/pdf", make_pdf(PDF_TEXT)),
    "/unlabelled": ("application/octet-stream", HTML.encode()),
    "/picture.png": ("image/png", b"\x89PNG\r\n\x1a\n"),
    "/big.txt": ("text/plain", b"y" * BIG_BYTES),
}


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/slow.txt":
            time.sleep(3)
        if self.path in ("/streamed-big.txt", "/slow.txt"):
            # No Content-Length: the body ends when the connection closes.
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"z" * BIG_BYTES)
            return
        if self.path not in ROUTES:
            self.send_error(404)
            return
        content_type, body = ROUTES[self.path]
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def documents_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
