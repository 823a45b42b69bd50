"""Snapshots of a bank's approximate index, so a restart does not rebuild HNSW or retrain IVF.

    b"LSMS" | row count (u64 LE) | chunk ids (int64 x rows) | faiss.write_index bytes

A snapshot is written to a temporary file, fsynced and renamed over the last one, so the file is
always a whole snapshot. It records which chunk ids it holds; the log stays the source of truth:
at load, rows the log deleted are marked dead and rows inserted after the snapshot are added
from the log, so a snapshot of any age is correct and only saves time.
"""

from __future__ import annotations

import logging
import os
import struct
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from .ann import Ids
from .log import fsync_directory

_untyped_faiss: Any = faiss  # faiss-cpu's stubs lack the classes used through this name

log = logging.getLogger(__name__)

MAGIC = b"LSMS"
_HEADER = struct.Struct("<4sQ")


def write_snapshot(path: Path, index: Any, ids: Ids) -> None:
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("wb") as file:
        file.write(_HEADER.pack(MAGIC, len(ids)))
        file.write(np.ascontiguousarray(ids, np.int64).tobytes())
        faiss.write_index(index, _untyped_faiss.PyCallbackIOWriter(file.write))
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)
    fsync_directory(path.parent)


def read_snapshot(path: Path) -> tuple[Any, Ids] | None:
    """The index and its ids, or None when there is no usable snapshot (the log rebuilds it)."""
    path.with_name(path.name + ".tmp").unlink(missing_ok=True)  # a snapshot cut off by a crash
    if not path.exists():
        return None
    try:
        with path.open("rb") as file:
            magic, rows = _HEADER.unpack(file.read(_HEADER.size))
            ids = np.frombuffer(file.read(rows * 8), np.int64)
            if magic != MAGIC or len(ids) != rows:
                raise ValueError("bad header")
            index = faiss.read_index(_untyped_faiss.PyCallbackIOReader(file.read))
    except (OSError, ValueError, RuntimeError, struct.error) as e:
        log.warning("%s: ignoring an unreadable index snapshot (%s); rebuilding from the log", path, e)
        return None
    if index.ntotal != rows:
        log.warning("%s: snapshot holds %d vectors for %d ids; rebuilding from the log", path, index.ntotal, rows)
        return None
    return index, ids.copy()
