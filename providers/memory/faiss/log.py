"""The append-only log a FAISS bank persists to.

A record is one insert request: the document ids it replaces, the ids, chunks and vectors it adds.

    b"LSMR" | payload length (u64 LE) | CRC-32 of payload (u32 LE) | payload
    payload = header length (u32 LE) | header JSON | vectors (float32, n x dimension, row-major)

An insert appends one record and fsyncs before it is acknowledged, so it costs O(chunks inserted)
and survives kill -9. A crash mid-append leaves a torn last record: replay stops at the first
record that is short or fails its CRC and truncates the file there, which drops only the insert
that was never acknowledged.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..common.types import StoredChunk, Vectors

log = logging.getLogger(__name__)

MAGIC = b"LSMR"
_PREFIX = struct.Struct("<4sQI")
_HEADER_LENGTH = struct.Struct("<I")


@dataclass
class Record:
    deleted_documents: list[str]
    ids: list[int]
    chunks: list[StoredChunk]
    vectors: Vectors


def encode_record(record: Record) -> bytes:
    header = json.dumps(
        {
            "delete": record.deleted_documents,
            "ids": record.ids,
            "chunks": [chunk.to_dict() for chunk in record.chunks],
        },
        ensure_ascii=False,
    ).encode("utf-8")
    payload = _HEADER_LENGTH.pack(len(header)) + header + np.ascontiguousarray(record.vectors, np.float32).tobytes()
    return _PREFIX.pack(MAGIC, len(payload), zlib.crc32(payload)) + payload


def _decode_payload(payload: bytes, dimension: int) -> Record:
    (header_length,) = _HEADER_LENGTH.unpack_from(payload)
    header: dict[str, Any] = json.loads(payload[_HEADER_LENGTH.size : _HEADER_LENGTH.size + header_length])
    ids = [int(i) for i in header["ids"]]
    vectors = np.frombuffer(payload, np.float32, offset=_HEADER_LENGTH.size + header_length)
    return Record(
        deleted_documents=list(header["delete"]),
        ids=ids,
        chunks=[StoredChunk.from_dict(chunk) for chunk in header["chunks"]],
        vectors=vectors.reshape(len(ids), dimension),
    )


def read_records(path: Path, dimension: int) -> Iterator[Record]:
    """Every intact record, in order; a torn or corrupt tail is cut off the file."""
    with path.open("rb") as file:
        data = file.read()
    offset = 0
    while offset < len(data):
        good_until = offset
        if len(data) - offset < _PREFIX.size:
            break
        magic, length, crc = _PREFIX.unpack_from(data, offset)
        start, end = offset + _PREFIX.size, offset + _PREFIX.size + length
        if magic != MAGIC or end > len(data) or zlib.crc32(data[start:end]) != crc:
            break
        try:
            record = _decode_payload(data[start:end], dimension)
        except (ValueError, KeyError, json.JSONDecodeError):
            break
        offset = end
        yield record
    else:
        return
    log.warning(
        "%s: dropping %d bytes after offset %d: an insert that was cut off before it was acknowledged",
        path,
        len(data) - good_until,
        good_until,
    )
    with path.open("r+b") as file:
        file.truncate(good_until)
        file.flush()
        os.fsync(file.fileno())


def fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LogWriter:
    """Appends records durably; a failed append is cut back so the log never keeps half a record."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.file = path.open("ab")

    def append(self, record: Record) -> None:
        data = encode_record(record)
        size = self.file.tell()
        try:
            self.file.write(data)
            self.file.flush()
            os.fsync(self.file.fileno())
        except OSError:
            self.file.truncate(size)
            raise

    def size(self) -> int:
        return self.file.tell()

    def close(self) -> None:
        self.file.close()


def write_log_atomically(path: Path, records: list[Record]) -> None:
    """Replace the log at `path` with `records` (compaction): temp file, fsync, rename."""
    temporary = path.with_suffix(".compacting")
    with temporary.open("wb") as file:
        for record in records:
            file.write(encode_record(record))
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)
    fsync_directory(path.parent)
