"""Reading blobs for responses: from the page cache on the event loop when possible.

Shared by v2 downloads and v1's JSON answers, which both stream stored bytes.
"""

from __future__ import annotations

import errno
import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import anyio
import anyio.lowlevel
from starlette.concurrency import iterate_in_threadpool

from ngshare.storage.base import BlobStore

# Bytes read per step of a download. Each piece waits in the connection's send buffer
# while the client reads it, so at a deadline's 32+ downloads in flight this size times
# the downloads is what the server holds; 256 KiB keeps that near 10 MB.
SEND_CHUNK = 256 * 1024
NOWAIT = getattr(os, "RWF_NOWAIT", None)  # Linux: read only what the page cache holds
YIELD_EVERY = 4 * 1024 * 1024  # bytes read from the page cache between turns of the event loop


Range = tuple[str, int, int]  # a blob's sha256, the first byte's offset, the byte count


async def concatenated(
    store: BlobStore, ranges: list[Range], piece: Callable[[], int], head: bytes = b""
) -> AsyncIterator[bytes | memoryview]:
    """`head`, then the ranges' bytes back to back, small ones gathered so each piece
    sent is about `piece()` bytes (a whole piece of a large blob goes as it was read)."""
    pending = bytearray(head)
    for sha256, offset, count in ranges:
        async for chunk in blob_pieces(store, sha256, offset, offset + count, piece):
            if not pending and len(chunk) >= piece():
                yield chunk
                continue
            pending += chunk
            if len(pending) >= piece():
                yield bytes(pending)
                pending.clear()
    if pending:
        yield bytes(pending)


def blob_pieces(
    store: BlobStore,
    sha256: str,
    start: int = 0,
    stop: int | None = None,
    piece: int | Callable[[], int] = SEND_CHUNK,
) -> AsyncIterator[bytes | memoryview]:
    """The blob's bytes [start, stop) in pieces of at most `piece` bytes (or of
    `piece()` bytes, asked before each read: budget.MemoryBudget.piece)."""
    local = store.local_file(sha256)
    if local is not None:
        return file_pieces(local, start, stop, piece)
    size = piece() if callable(piece) else piece
    return iterate_in_threadpool(_read_range(store, sha256, start, stop, size))


async def file_pieces(
    path: Path,
    start: int = 0,
    stop: int | None = None,
    piece: int | Callable[[], int] = SEND_CHUNK,
) -> AsyncIterator[memoryview]:
    """A local file's bytes [start, stop), read on the event loop while the page cache
    holds them.

    A synchronous generator behind StreamingResponse costs a worker-thread
    round trip per piece: 80 of them for a 20 MB dataset, several times what
    copying the bytes costs. `preadv(RWF_NOWAIT)` returns only bytes already
    in memory and never waits for the disk; a piece that needs the disk is
    read on a worker thread, as before. A new buffer per piece: the transport
    may keep a reference to what it has not sent yet.
    """
    fd = await anyio.to_thread.run_sync(os.open, path, os.O_RDONLY)
    try:
        if stop is None:
            stop = os.fstat(fd).st_size
        position, nowait, unyielded = start, NOWAIT, 0
        while position < stop:
            if unyielded >= YIELD_EVERY:
                # reads from the page cache and sends into a socket with room (or into
                # one whose client hung up) never wait: without this the loop would
                # serve nobody else, nor hear of a disconnect, until the file ends
                await anyio.lowlevel.checkpoint()
                unyielded = 0
            buffer = bytearray(min(piece() if callable(piece) else piece, stop - position))
            got = 0
            if nowait is not None:
                try:
                    got = os.preadv(fd, [buffer], position, nowait)
                except BlockingIOError:
                    got = 0
                except OSError as exc:
                    if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                        raise
                    nowait = None  # this filesystem cannot: threads from now on
            if got == 0:
                got = await anyio.to_thread.run_sync(os.preadv, fd, [buffer], position)
                unyielded = 0
                if got == 0:
                    break  # the file ends early: the response comes up short
            else:
                unyielded += got
            position += got
            yield memoryview(buffer)[:got]
    finally:
        os.close(fd)


def _read_range(
    store: BlobStore, sha256: str, start: int, stop: int | None, piece: int
) -> Iterator[bytes]:
    with store.open(sha256) as handle:
        if stop is None:
            handle.seek(0, os.SEEK_END)
            stop = handle.tell()
        handle.seek(start)
        remaining = stop - start
        while remaining > 0:
            chunk = handle.read(min(piece, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            yield chunk
