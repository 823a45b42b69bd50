"""inline::faiss persistence: an acknowledged insert survives kill -9, a torn last write is
dropped cleanly, an insert appends to the log instead of rewriting it, and replaced chunks are
compacted away at startup."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.providers.memory.hashing import find, insert, log_file, open_faiss

REPO = Path(__file__).resolve().parents[3]

WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from tests.providers.memory.hashing import insert, open_faiss

    async def main() -> None:
        provider = await open_faiss(Path(sys.argv[1]))
        n = 0
        while True:
            await insert(provider, f"doc-{n}", f"entry number {n} of the ledger", n=n)
            print(f"ACK {n}", flush=True)
            n += 1

    asyncio.run(main())
    """
)


def write_until_killed(state: Path, acknowledgements: int) -> list[int]:
    """Run a writer process, SIGKILL it right after its `acknowledgements`-th acknowledged insert
    (mid-way through the next one), and return every insert it acknowledged."""
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(state)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert writer.stdout is not None
    acknowledged: list[int] = []
    try:
        for line in writer.stdout:
            acknowledged.append(int(line.split()[1]))
            if len(acknowledged) == acknowledgements:
                os.kill(writer.pid, signal.SIGKILL)
                break
    finally:
        if writer.poll() is None:
            os.kill(writer.pid, signal.SIGKILL)
        writer.wait(timeout=30)
    acknowledged += [int(line.split()[1]) for line in writer.stdout.read().splitlines()]
    assert writer.returncode == -signal.SIGKILL
    return acknowledged


async def test_an_acknowledged_insert_survives_kill_9(tmp_path: Path) -> None:
    acknowledged = write_until_killed(tmp_path, 25)
    provider = await open_faiss(tmp_path)
    try:
        for n in acknowledged:
            assert await find(provider, f"entry number {n}", filters={"n": n}) == [
                (f"doc-{n}", f"entry number {n} of the ledger")
            ]
        stored = {document_id for document_id, _ in await find(provider, "ledger", max_chunks=1000)}
        # Everything acknowledged, plus at most the one insert that was under way.
        assert {f"doc-{n}" for n in acknowledged} <= stored
        assert len(stored) - len(acknowledged) in (0, 1)
        await insert(provider, "after", "written after the crash")
        assert (await find(provider, "after the crash", max_chunks=1))[0][0] == "after"
    finally:
        await provider.shutdown()


async def test_a_torn_last_write_is_dropped_and_the_bank_keeps_working(tmp_path: Path) -> None:
    provider = await open_faiss(tmp_path)
    await insert(provider, "a", "alpha document")
    await insert(provider, "b", "beta document")
    await provider.shutdown()
    log = log_file(tmp_path)
    intact = log.read_bytes()
    with log.open("ab") as file:  # what a crash half-way through appending a third record leaves
        file.write(intact[: len(intact) // 3])

    provider = await open_faiss(tmp_path)
    try:
        assert sorted(d for d, _ in await find(provider, "document", max_chunks=10)) == ["a", "b"]
        assert log.read_bytes() == intact
        await insert(provider, "c", "gamma document")
    finally:
        await provider.shutdown()
    provider = await open_faiss(tmp_path)
    try:
        assert sorted(d for d, _ in await find(provider, "document", max_chunks=10)) == ["a", "b", "c"]
    finally:
        await provider.shutdown()


async def test_an_insert_appends_to_the_log_and_never_rewrites_it(tmp_path: Path) -> None:
    provider = await open_faiss(tmp_path, chunk_size=4)
    try:
        await insert(provider, "big", " ".join(f"word{i}" for i in range(4000)))  # about 2000 chunks
        log = log_file(tmp_path)
        before, inode = log.read_bytes(), log.stat().st_ino
        await insert(provider, "small", "three tiny chunks of text here")
        after = log.read_bytes()
        assert log.stat().st_ino == inode
        assert after[: len(before)] == before  # nothing written so far was touched
        per_chunk = len(before) / 2000
        assert len(after) - len(before) < 5 * per_chunk  # the cost of the new chunks only
    finally:
        await provider.shutdown()


async def test_replaced_chunks_are_compacted_away_at_startup(tmp_path: Path) -> None:
    provider = await open_faiss(tmp_path, chunk_size=4)
    text = " ".join(f"token{i}" for i in range(2400))
    for version in range(3):
        await insert(provider, "doc", f"version{version} {text}")
    await provider.shutdown()
    grown = log_file(tmp_path).stat().st_size

    provider = await open_faiss(tmp_path, chunk_size=4)
    try:
        compacted = log_file(tmp_path).stat().st_size
        assert compacted < grown / 2
        chunks = await find(provider, "version2 token0", max_chunks=1000)
        assert len(chunks) == 1000 and {d for d, _ in chunks} == {"doc"}
        assert "version2" in "".join(c for _, c in await find(provider, "version2", mode="keyword"))
        assert await find(provider, "version0", mode="keyword") == []
    finally:
        await provider.shutdown()
