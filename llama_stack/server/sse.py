"""Server-sent events: `data: <json>\\n\\n` frames, errors mid-stream as an error event, and an
optional trailer (the /v1 face's `data: [DONE]`; the /alpha face has none). The first chunk is awaited
before any header is sent, so a request that fails at once (unknown model, prompt too long) still
gets its proper status code."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from pydantic import BaseModel
from starlette.responses import StreamingResponse

from llama_stack.apis.common import dump_json
from llama_stack.apis.errors import StackError
from llama_stack.server.errors import stream_error_event

log = logging.getLogger(__name__)

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _frame(chunk: BaseModel) -> bytes:
    return b"data: " + dump_json(chunk, exclude_none=True) + b"\n\n"


def _error_frame(error: BaseException) -> bytes:
    return b"data: " + dump_json(stream_error_event(error)) + b"\n\n"


async def sse_response(
    chunks: AsyncIterator[Any],
    frame: Callable[[Any], bytes] = _frame,
    error_frame: Callable[[BaseException], bytes] = _error_frame,
    trailer: bytes = b"",
) -> StreamingResponse:
    try:
        first = await anext(chunks)
    except StopAsyncIteration:
        first = None
    except BaseException:
        await _close(chunks)
        raise

    async def body() -> AsyncIterator[bytes]:
        # Starlette cancels this generator when the client disconnects; closing `chunks` in the
        # finally block is what stops the provider's generation behind it.
        try:
            if first is not None:
                yield frame(first)
                async for chunk in chunks:
                    yield frame(chunk)
            if trailer:
                yield trailer
        except Exception as error:
            if not isinstance(error, StackError):
                log.exception("stream failed")
            yield error_frame(error)
        finally:
            await _close(chunks)

    return StreamingResponse(body(), media_type="text/event-stream", headers=SSE_HEADERS)


async def _close(chunks: AsyncIterator[Any]) -> None:
    aclose = getattr(chunks, "aclose", None)
    if aclose is not None:
        await aclose()
