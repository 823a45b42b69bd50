"""The provider's side of the Ollama connection: one `ollama.AsyncClient`, Ollama's failures
turned into the stack's typed errors, the list of installed tags, and pulls with progress.

Every call to Ollama goes through `errors()` (or `stream()` for NDJSON streams), so a refused
connection, a timeout or an `{"error": ...}` body always surfaces as the same typed error.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import httpx
import ollama
import pydantic
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn, TransferSpeedColumn

from llama_stack.apis.errors import InvalidRequest, NotFound, RateLimited, StackError, UpstreamError, UpstreamTimeout

from .config import OllamaInferenceConfig
from .models import normalize_tag

log = logging.getLogger(__name__)

T = TypeVar("T")


def pull_command(tag: str) -> str:
    return f"`ollama pull {tag}`"


class OllamaConnection:
    def __init__(self, config: OllamaInferenceConfig) -> None:
        self.url = config.url.rstrip("/")
        self.timeout_s = config.timeout_s
        self.connect_timeout_s = config.connect_timeout_s
        timeout = httpx.Timeout(config.timeout_s, connect=config.connect_timeout_s)
        self.client = ollama.AsyncClient(host=self.url, timeout=timeout)

    async def close(self) -> None:
        await self.client._client.aclose()

    # --- errors ---------------------------------------------------------------------------------

    def translate(self, error: BaseException, tag: str | None) -> StackError | None:
        """The typed error for a failure of a call to Ollama, or None if it is not Ollama's."""
        if isinstance(error, ollama.ResponseError):
            return self._response_error(error, tag)
        if isinstance(error, httpx.ConnectTimeout):
            return UpstreamTimeout(
                f"Ollama at {self.url} did not accept a connection within {self.connect_timeout_s:g}s: "
                "is `ollama serve` running and reachable?"
            )
        if isinstance(error, httpx.TimeoutException):
            return UpstreamTimeout(f"Ollama at {self.url} did not answer within {self.timeout_s:g}s")
        if isinstance(error, httpx.ConnectError | ConnectionError):
            return UpstreamError(f"cannot connect to Ollama at {self.url}: is `ollama serve` running?")
        if isinstance(error, httpx.HTTPError):
            return UpstreamError(f"Ollama at {self.url} failed: {type(error).__name__}: {error}")
        if isinstance(error, pydantic.ValidationError | json.JSONDecodeError):
            return UpstreamError(f"Ollama at {self.url} sent a reply this provider cannot read: {error}")
        return None

    def _response_error(self, error: ollama.ResponseError, tag: str | None) -> StackError:
        message, status = str(error.error).strip(), error.status_code
        if status == 404 or "not found, try pulling it first" in message:
            model = f"model '{tag}'" if tag else "the model"
            pull = f": run {pull_command(tag)} on the Ollama host" if tag else ""
            return NotFound(f"Ollama at {self.url} has no {model}{pull} ({message})")
        if status == 429 or (status == 503 and "busy" in message):
            return RateLimited(f"Ollama at {self.url} is busy: {message}")
        if 400 <= status < 500:
            return InvalidRequest(f"Ollama rejected the request: {message}")
        where = f"HTTP {status}" if status > 0 else "mid-stream"
        return UpstreamError(f"Ollama at {self.url} failed ({where}): {message}")

    @contextmanager
    def errors(self, tag: str | None = None) -> Iterator[None]:
        try:
            yield
        except Exception as error:
            typed = self.translate(error, tag)
            if typed is None:
                raise
            raise typed from error

    async def call(self, tag: str | None, request: Callable[[], Awaitable[T]]) -> T:
        with self.errors(tag):
            return await request()

    async def stream(self, tag: str | None, start: Callable[[], Awaitable[AsyncIterator[T]]]) -> AsyncIterator[T]:
        """The parts of an NDJSON stream. Closing this iterator early (aclose, cancellation) closes
        the HTTP response, so Ollama sees the disconnect and stops generating."""
        with self.errors(tag):
            parts = await start()
            try:
                async for part in parts:
                    yield part
            finally:
                aclose = getattr(parts, "aclose", None)
                if aclose is not None:
                    await aclose()

    # --- models ---------------------------------------------------------------------------------

    async def installed_tags(self) -> dict[str, str]:
        """Normalised name -> the name Ollama lists, for every model it has."""
        listing = await self.call(None, self.client.list)
        names = (model.model for model in listing.models if model.model)
        return {normalize_tag(name): name for name in names}

    async def show(self, tag: str) -> ollama.ShowResponse:
        return await self.call(tag, lambda: self.client.show(tag))

    async def pull(self, tag: str) -> None:
        """Pull `tag`, logging its progress and drawing a progress bar on the server console."""
        log.info("pulling %s from the Ollama library through %s", tag, self.url)
        with PullProgress(tag) as progress:
            async for event in self.stream(tag, lambda: self.client.pull(tag, stream=True)):
                progress.update(event)
        if progress.last_status != "success":
            raise UpstreamError(f"pulling {tag} through Ollama at {self.url} ended without success")
        log.info("pulled %s", tag)


class PullProgress:
    """Turns a pull's NDJSON progress events into a rich progress bar (one bar per layer) and
    log lines at each status change and every 25% of a layer."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.last_status = ""
        self._bars = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=Console(stderr=True),
        )
        self._tasks: dict[str, TaskID] = {}
        self._logged_quarter: dict[str, int] = {}

    def __enter__(self) -> PullProgress:
        self._bars.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._bars.stop()

    def update(self, event: ollama.ProgressResponse) -> None:
        status = event.status or ""
        if event.digest and event.total:
            self._layer(event.digest, status, event.total, event.completed or 0)
        elif status != self.last_status:
            log.info("pull %s: %s", self.tag, status)
        self.last_status = status

    def _layer(self, digest: str, status: str, total: int, completed: int) -> None:
        task = self._tasks.get(digest)
        if task is None:
            task = self._tasks[digest] = self._bars.add_task(f"{self.tag} {status}", total=total)
        self._bars.update(task, completed=completed, total=total)
        quarter = 4 * completed // total
        if quarter > self._logged_quarter.get(digest, -1):
            self._logged_quarter[digest] = quarter
            log.info("pull %s: %s %d%% of %d bytes", self.tag, status, 25 * quarter, total)
