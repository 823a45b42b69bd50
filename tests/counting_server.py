"""A real loopback HTTP server that counts the requests it gets: what SSRF tests assert on.

Routes are set per test: a body with a content type, a redirect, a slow answer. Every request is
recorded (path and Host header) before it is answered, so "nothing was fetched" means no hit.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Route:
    body: bytes = b""
    content_type: str = "text/plain"
    status: int = 200
    location: str | None = None
    delay_s: float = 0.0
    chunked: bool = False  # no Content-Length: the body ends when the connection closes


@dataclass
class CountingServer:
    url: str
    routes: dict[str, Route] = field(default_factory=dict)
    hits: list[tuple[str, str]] = field(default_factory=list)  # (path, Host header)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def paths(self) -> list[str]:
        with self.lock:
            return [path for path, _ in self.hits]


def _handler(server: CountingServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with server.lock:
                server.hits.append((self.path, self.headers.get("Host", "")))
            route = server.routes.get(self.path)
            if route is None:
                self.send_error(404)
                return
            time.sleep(route.delay_s)
            self.send_response(route.status)
            if route.location is not None:
                self.send_header("Location", route.location)
            self.send_header("Content-Type", route.content_type)
            if not route.chunked:
                self.send_header("Content-Length", str(len(route.body)))
            else:
                self.close_connection = True
            self.end_headers()
            self.wfile.write(route.body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that stops reading (a size cap, a refused redirect) is expected here."""


@contextmanager
def counting_server(host: str = "127.0.0.1") -> Iterator[CountingServer]:
    state = CountingServer(url="")
    httpd = _QuietServer((host, 0), _handler(state))
    state.url = f"http://{host}:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
