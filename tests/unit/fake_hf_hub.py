"""A fake Hugging Face Hub: just what huggingface_hub's `snapshot_download` asks of a model repo.

huggingface_hub 2.x, for `snapshot_download(repo_id)`:
1. GET  /api/models/{repo}/revision/main          -> JSON with `sha` (the commit) and `siblings`
   (`llama model download` asks GET /api/models/{repo} first: the same, for the default branch);
2. GET  /api/models/{repo}/tree/{sha}?recursive=True -> JSON list of files (`type`, `path`, `size`,
   `oid`, and `lfs` {oid, size, pointerSize} for LFS files), one page (no `Link: rel=next`);
3. per file, HEAD /{repo}/resolve/{sha}/{path} (no redirect following off this host). A regular
   file answers 200 with `X-Repo-Commit`, `ETag` (its git blob sha1) and `Content-Length`; an
   LFS file answers 302 to a CDN on another host (here `localhost` instead of `127.0.0.1`) with
   `X-Linked-Etag` (its sha256) and `X-Linked-Size`, as the Hub does;
4. GET of the resolve URL, or of the CDN URL for an LFS file, without the Authorization header.
(2.x also GETs /api/agent-harnesses, a registry for its User-Agent, unless telemetry is off.)
Errors carry the Hub's `X-Error-Code` (RepoNotFound, RevisionNotFound, EntryNotFound, GatedRepo)
and `X-Error-Message` headers, which huggingface_hub maps to its exception classes. A gated repo's
metadata is public, as on the Hub; its files answer 401 without a token, 403 with one not on the
authorized list.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

LFS_SUFFIXES = (".safetensors", ".pth", ".bin")


@dataclass
class FakeRepo:
    files: dict[str, bytes]
    gated: bool = False
    says_gated: bool = True  # whether its metadata says "gated" (the Hub's does; the files answer either way)
    allowed_tokens: frozenset[str] = frozenset()
    sha: str = "0123456789abcdef0123456789abcdef01234567"

    def is_lfs(self, path: str) -> bool:
        return path.endswith(LFS_SUFFIXES)


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    authorization: str | None


def git_blob_sha1(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


@dataclass
class FakeHub:
    repos: dict[str, FakeRepo]
    requests: list[Request] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def cdn(self) -> str:  # another host name for the same server, as cdn-lfs.hf.co is for the Hub
        return f"http://localhost:{self.port}/cdn"

    def tree(self, repo: FakeRepo) -> list[dict[str, object]]:
        folders = sorted({p.rsplit("/", 1)[0] for p in repo.files if "/" in p})
        entries: list[dict[str, object]] = [
            {"type": "directory", "oid": git_blob_sha1(f.encode()), "size": 0, "path": f} for f in folders
        ]
        for path, content in sorted(repo.files.items()):
            entry: dict[str, object] = {"type": "file", "oid": git_blob_sha1(content), "size": len(content)}
            if repo.is_lfs(path):
                entry["lfs"] = {"oid": sha256(content), "size": len(content), "pointerSize": 134}
            entries.append({**entry, "path": path})
        return entries

    def lfs_blob(self, digest: str) -> bytes | None:
        for repo in self.repos.values():
            for path, content in repo.files.items():
                if repo.is_lfs(path) and sha256(content) == digest:
                    return content
        return None


API = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)(?:/(?P<kind>revision|tree)/(?P<rev>[^/]+))?$")
RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<file>.+)$")
CDN = re.compile(r"^/cdn/(?P<digest>[0-9a-f]{64})$")


class Handler(BaseHTTPRequestHandler):
    hub: FakeHub  # set on the subclass made per server

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self.route(body=True)

    def do_HEAD(self) -> None:
        self.route(body=False)

    def route(self, body: bool) -> None:
        path = unquote(urlsplit(self.path).path)
        self.hub.requests.append(Request(self.command, path, self.headers.get("Authorization")))
        if path == "/api/agent-harnesses":  # huggingface_hub's user-agent detection, once a day
            self.send(200, b'{"standardEnvVars": [], "harnesses": {}}', {"Content-Type": "application/json"}, body)
        elif match := API.match(path):
            self.api(match["repo"], match["kind"] or "revision", match["rev"] or "main")
        elif match := RESOLVE.match(path):
            self.resolve(match["repo"], match["rev"], match["file"], body)
        elif (match := CDN.match(path)) and (content := self.hub.lfs_blob(match["digest"])) is not None:
            self.send(200, content, {"Content-Type": "application/octet-stream"}, body)
        else:
            self.error(404, "NotFound", f"no route for {path}")

    def api(self, repo_id: str, kind: str, rev: str) -> None:
        repo = self.find(repo_id, rev)
        if repo is None:
            return
        if kind == "tree":
            data: object = self.hub.tree(repo)
        else:
            siblings = [{"rfilename": p} for p in sorted(repo.files)]
            data = {
                "id": repo_id,
                "sha": repo.sha,
                "private": False,
                "gated": "manual" if repo.gated and repo.says_gated else False,
            }
            data = {**data, "siblings": siblings, "tags": [], "downloads": 0, "likes": 0}
        self.send(200, json.dumps(data).encode(), {"Content-Type": "application/json"}, True)

    def resolve(self, repo_id: str, rev: str, file: str, body: bool) -> None:
        repo = self.find(repo_id, rev)
        if repo is None or not self.authorized(repo_id, repo):
            return
        commit = {"X-Repo-Commit": repo.sha}
        if file not in repo.files:
            self.error(404, "EntryNotFound", "Entry not found", commit)
            return
        content = repo.files[file]
        if repo.is_lfs(file):
            digest = sha256(content)
            headers = {**commit, "X-Linked-Etag": f'"{digest}"', "X-Linked-Size": str(len(content))}
            headers |= {"ETag": f'"{digest}"', "Location": f"{self.hub.cdn}/{digest}"}
            self.send(302, b"", headers, body)
        else:
            headers = {**commit, "ETag": f'"{git_blob_sha1(content)}"', "Content-Type": "text/plain"}
            self.send(200, content, headers, body)

    def find(self, repo_id: str, rev: str) -> FakeRepo | None:
        repo = self.hub.repos.get(repo_id)
        if repo is None:  # the Hub answers 401 for a repo that does not exist (or is private)
            self.error(401, "RepoNotFound", "Repository not found")
        elif rev not in ("main", repo.sha):
            self.error(404, "RevisionNotFound", "Invalid rev id")
            repo = None
        return repo

    def authorized(self, repo_id: str, repo: FakeRepo) -> bool:
        if not repo.gated:
            return True
        token = (self.headers.get("Authorization") or "").removeprefix("Bearer ").strip()
        if token in repo.allowed_tokens:
            return True
        if token:
            message = f"Access to model {repo_id} is restricted and you are not in the authorized list."
            self.error(403, "GatedRepo", message)
        else:
            message = f"Access to model {repo_id} is restricted. You must have access to it and be authenticated."
            self.error(401, "GatedRepo", message)
        return False

    def error(self, status: int, code: str, message: str, extra: dict[str, str] | None = None) -> None:
        headers = {"X-Error-Code": code, "X-Error-Message": message, "Content-Type": "application/json"}
        self.send(status, json.dumps({"error": message}).encode(), headers | (extra or {}), True)

    def send(self, status: int, content: bytes, headers: dict[str, str], body: bool) -> None:
        self.send_response(status)
        for name, value in {**headers, "Content-Length": str(len(content))}.items():
            self.send_header(name, value)
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(content)


@contextmanager
def serve(repos: dict[str, FakeRepo]) -> Iterator[FakeHub]:
    hub = FakeHub(repos)
    handler = type("BoundHandler", (Handler,), {"hub": hub})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    hub.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hub
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
