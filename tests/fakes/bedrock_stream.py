"""Bedrock's streaming answers as real bytes on the wire, for a real botocore client.

botocore's Stubber cannot stub an event stream (it validates the `stream` member as a plain
structure), so streams are served one level lower: a `before-send` handler (botocore's own hook
for answering a request without the network) returns an HTTP response whose body is AWS
event-stream frames. botocore then parses them exactly as it parses Bedrock's.
"""

from __future__ import annotations

import json
import struct
import time
import zlib
from collections.abc import Iterator
from typing import Any

from botocore.awsrequest import AWSResponse


def _header(name: str, value: str) -> bytes:
    raw_name, raw_value = name.encode(), value.encode()
    return struct.pack("B", len(raw_name)) + raw_name + b"\x07" + struct.pack(">H", len(raw_value)) + raw_value


def frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One event-stream message: prelude, prelude CRC, headers, payload, message CRC."""
    encoded = b"".join(_header(name, value) for name, value in headers.items())
    total = 12 + len(encoded) + len(payload) + 4
    prelude = struct.pack(">II", total, len(encoded))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + encoded + payload
    return message + struct.pack(">I", zlib.crc32(message))


def event_frame(event: dict[str, Any]) -> bytes:
    """`{"contentBlockDelta": {...}}` as Bedrock sends it; `{"throttlingException": {...}}` as an error."""
    ((name, body),) = event.items()
    payload = json.dumps(body).encode()
    if name.endswith("Exception"):
        headers = {":message-type": "exception", ":exception-type": name, ":content-type": "application/json"}
    else:
        headers = {":message-type": "event", ":event-type": name, ":content-type": "application/json"}
    return frame(headers, payload)


class EventStreamBody:
    """The raw body botocore reads: `stream()` yields frames, `close()` is what a cancelled stream
    must call. `delay_s` spaces the frames out, for tests that close a stream midway."""

    def __init__(self, events: list[dict[str, Any]], delay_s: float = 0.0) -> None:
        self.frames = [event_frame(event) for event in events]
        self.delay_s = delay_s
        self.closed = False
        self.sent = 0

    def stream(self, *args: Any, **kwargs: Any) -> Iterator[bytes]:
        for data in self.frames:
            if self.closed:
                return
            if self.delay_s:
                time.sleep(self.delay_s)
            self.sent += 1
            yield data

    def close(self) -> None:
        self.closed = True


def serve_event_stream(client: Any, operation: str, body: EventStreamBody) -> None:
    """Answer the client's next `operation` call (e.g. "ConverseStream") with `body`."""
    event_name = f"before-send.bedrock-runtime.{operation}"

    def answer(request: Any, **kwargs: Any) -> AWSResponse:
        client.meta.events.unregister(event_name, answer)
        headers = {"content-type": "application/vnd.amazon.eventstream", "x-amzn-requestid": "fake"}
        return AWSResponse(request.url, 200, headers, body)

    client.meta.events.register(event_name, answer)
