"""Receiving a PUT's body into an upload: batches borrowed from the memory budget.

A reader gathers the network's reads into batches; a writer task hands each
batch to a worker thread (`Upload.write_pieces`) while the next one arrives,
through a queue of one. Each batch's bytes are borrowed from the server's
memory budget before its first read and repaid when the writer returns from
it (`BatchLoans`), so 500 students sending 10 MB files at once take turns
instead of holding megabytes each, and an upload waiting for the budget holds
none of its body: it waits in uvicorn's 64 KiB buffer and the kernel's.

Two ways to gather a batch, by file size:

- Below LARGE_FILE, a batch is the list of reads itself: nothing is copied,
  and nothing outlives the batch.
- From LARGE_FILE on, reads are copied into a `BatchRing` of four buffers
  reused for the whole upload. A multi-gigabyte upload goes through a
  thousand batches; a new buffer for each is fresh memory, which on a VM
  costs a page fault per 4 KiB (a 4 GiB upload by the Python client ran at
  594-791 MB/s with a list of reads per batch against 737-859 MB/s with the
  ring), and the hashing thread is quicker on one large buffer than on a
  list of 64 KiB reads. The buffers are page-aligned (anonymous mmaps), so
  the O_DIRECT appender writes a batch from where it is instead of copying
  it into its own buffer first (a 4 GiB upload by curl: 1162-1224 MB/s
  against 1059-1079). A ring that waits for the budget lets its buffers go
  first (`BatchRing.drop`), so waiting still holds nothing.
"""

from __future__ import annotations

import mmap
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from functools import partial

import anyio
from starlette.requests import ClientDisconnect, Request

from ngshare.budget import MemoryBudget
from ngshare.errors import BadRequest, BodyStalled
from ngshare.socketbody import SocketBody
from ngshare.storage import Upload

WRITE_BATCH = 1024 * 1024  # per upload in flight: bounds memory at the deadline peak
# Files this large come a few at a time: bigger batches mean fewer thread hand-offs
# (a 2 GiB upload by curl: about 1000 MB/s against 820 with 1 MiB batches; 4 GiB read
# from the socket: 1662-1701 MB/s with 8 MiB against 1477-1610 with 4 MiB). The ring
# holds four: 32 MiB per large upload, at most three batches borrowed from the budget.
LARGE_FILE, LARGE_BATCH = 64 * 1024 * 1024, 8 * 1024 * 1024

Batch = list[bytes | memoryview]  # reads from the network, or one view into a ring buffer


async def receive_body(
    request: Request, upload: Upload, size: int, memory: MemoryBudget, stall_timeout: float
) -> None:
    """Append the request's body to `upload`, up to `size` bytes in all.

    Raises BadRequest for a body longer than `size` (the upload is dropped)
    or a connection closed early (what arrived is kept for a resume), and
    BodyStalled when a body read past uvicorn stops coming.
    """
    queue_in, queue_out = anyio.create_memory_object_stream[Batch](1)
    outcome = {
        "received": upload.offset,
        "too_long": False,
        "disconnected": False,
        "stalled": False,
    }
    loans = BatchLoans(memory)

    async def writer() -> None:
        async with queue_out:
            async for batch in queue_out:
                await anyio.to_thread.run_sync(upload.write_pieces, batch)
                # no reference left while the next batch is awaited: an upload waiting
                # for the budget held its last batch here, 1 MiB outside the budget
                del batch
                loans.repay_one()

    try:
        with _gatherer(request, size, upload.offset, stall_timeout) as gather:
            async with anyio.create_task_group() as group:
                group.start_soon(writer)
                async with queue_in:
                    await gather(request, queue_in, size, outcome, loans)
    except BaseExceptionGroup as failed:  # the writer or the socket failed: its error
        raise failed.exceptions[0] from None
    finally:
        loans.repay_all()
    if outcome["too_long"]:
        await anyio.to_thread.run_sync(upload.abort)
        raise BadRequest(f"The body is longer than the declared size of {size} bytes")
    if outcome["stalled"]:
        await anyio.to_thread.run_sync(upload.suspend)
        raise BodyStalled(stall_timeout)
    if outcome["disconnected"]:
        await anyio.to_thread.run_sync(upload.suspend)
        raise BadRequest(
            f"Connection closed at byte {upload.offset}; resume with offset={upload.offset}"
        )


@contextmanager
def _gatherer(request: Request, size: int, offset: int, stall_timeout: float) -> Iterator:
    """How the body is read: small files as uvicorn's reads, large ones into a
    ring, from the socket itself where the connection is lent (ngshare.socketbody,
    whose duplicate of the socket is closed on the way out)."""
    if size < LARGE_FILE:
        yield _read_pieces
        return
    body = SocketBody.take(request, size - offset, stall_timeout)
    if body is None:
        yield _read_into_ring
        return
    try:
        yield partial(_read_from_socket, body)
    finally:
        body.close()


class BatchLoans:
    """The memory budget's bytes behind an upload's batches, one loan per batch, in order.

    A loan is taken before a batch is filled, and repaid when
    `upload.write_pieces` returns for it. Repayment depends only on the disk,
    never on the budget, so once a reader waits for its next loan, the writer
    soon repays all the upload holds: readers waiting for the budget cannot
    deadlock one another. A large upload still hashes its last batch for a
    few milliseconds after the write returns; that batch is counted no
    longer, an undercount of one batch per large upload at most.
    """

    def __init__(self, memory: MemoryBudget) -> None:
        self.memory = memory
        self.loans: deque[int] = deque()

    async def borrow(self, size: int, before_waiting: Callable[[], None] | None = None) -> None:
        """Take `size` bytes; `before_waiting` runs first if that means waiting."""
        if before_waiting is not None and self.memory.would_wait(size):
            before_waiting()
        self.loans.append(await self.memory.acquire(size))

    def repay_one(self) -> None:
        if self.loans:
            self.memory.release(self.loans.popleft())

    def repay_all(self) -> None:
        while self.loans:
            self.repay_one()


def _batch_size(size: int, received: int) -> int:
    largest = LARGE_BATCH if size >= LARGE_FILE else WRITE_BATCH
    return max(1, min(largest, size - received))


async def _reads(request: Request, size: int, outcome: dict) -> AsyncIterator[bytes]:
    """The body's non-empty reads, one at a time as asked for, counted in `outcome`;
    they stop early at a body longer than `size`, a closed connection or a stall."""
    body = request.stream()
    try:
        async for chunk in body:
            outcome["received"] += len(chunk)
            if outcome["received"] > size:
                outcome["too_long"] = True
                return
            if chunk:
                yield chunk
    except ClientDisconnect:
        outcome["disconnected"] = True
    except BodyStalled:  # from the middleware's receive: keep what arrived, then refuse
        outcome["stalled"] = True
    finally:
        await body.aclose()


async def _read_pieces(request: Request, queue, size: int, outcome: dict, loans: BatchLoans):
    """Batches that are lists of reads, `batch_size` bytes or a little more each."""
    batch_size = _batch_size(size, outcome["received"])
    reads = _reads(request, size, outcome)
    chunks: list[bytes] = []
    pending, lent = 0, False
    try:
        while True:
            if not lent:
                await loans.borrow(batch_size)
                lent = True
            chunk = await anext(reads, None)
            if chunk is None:
                break
            chunks.append(chunk)
            pending += len(chunk)
            del chunk  # nor the last read while the next loan is awaited
            if pending >= batch_size:
                await queue.send(chunks)
                chunks, pending, lent = [], 0, False
    finally:
        await reads.aclose()
    if chunks and not outcome["too_long"]:
        await queue.send(chunks)


async def _read_into_ring(request: Request, queue, size: int, outcome: dict, loans: BatchLoans):
    """Batches of exactly `batch_size` bytes (the last one shorter), in a BatchRing."""
    ring = BatchRing(_batch_size(size, outcome["received"]))
    reads = _reads(request, size, outcome)
    lent = False
    try:
        while True:
            if not lent:
                await loans.borrow(ring.batch_size, ring.drop)
                lent = True
            chunk = await anext(reads, None)
            if chunk is None:
                break
            rest = memoryview(chunk)
            del chunk
            while rest:
                if not lent:  # a read that straddles two batches
                    await loans.borrow(ring.batch_size, ring.drop)
                    lent = True
                rest = ring.take(rest)
                if ring.full:
                    await queue.send([ring.hand_over()])
                    lent = False
            del rest
    finally:
        await reads.aclose()
    if ring.filled and not outcome["too_long"]:
        await queue.send([ring.hand_over()])


async def _read_from_socket(
    body: SocketBody, request: Request, queue, size: int, outcome: dict, loans: BatchLoans
):
    """Batches of exactly `batch_size` bytes read from the socket into a BatchRing."""
    ring = BatchRing(_batch_size(size, outcome["received"]))
    while body.left:
        await loans.borrow(ring.batch_size, ring.drop)
        want = min(ring.batch_size, body.left)
        got = await body.read_into(ring.current[:want])
        ring.filled = got
        outcome["received"] += got
        if got:  # kept, even when the body stops short: a resume continues after it
            await queue.send([ring.hand_over()])
        if got < want:
            outcome["stalled" if body.stalled else "disconnected"] = True
            return


class BatchRing:
    """Four batch buffers, filled in turn and reused for the whole upload.

    Why not `batch += chunk` into a new bytearray per batch: growing a
    bytearray by 256 KiB reads reallocates and copies it again and again
    (memmove was 42% of the server's samples in a 2 GiB upload), and each new
    batch is fresh memory (see the module's docstring). Four suffice because
    the queue to the writer holds one batch: when batch k has been handed
    over, `upload.write_pieces` has returned for batch k - 2, and with it
    every use of batch k - 3 (a large upload still hashes the last batch it
    got after the write returns, see `LocalUpload.write_pieces`); batch
    k - 3's buffer is the next to fill. Buffers are made when first needed.
    """

    def __init__(self, batch_size: int) -> None:
        self.batch_size = max(batch_size, 1)
        self.buffers: list[memoryview | None] = [None, None, None, None]
        self.turn = 0
        self.filled = 0

    @property
    def current(self) -> memoryview:
        buffer = self.buffers[self.turn]
        if buffer is None:  # page-aligned: an O_DIRECT write takes it as it is
            buffer = self.buffers[self.turn] = memoryview(mmap.mmap(-1, self.batch_size))
        return buffer

    def take(self, data: memoryview) -> memoryview:
        """Copy what fits of `data` into the current buffer; the rest is returned."""
        room = len(self.current) - self.filled
        taken = data[:room]
        self.current[self.filled : self.filled + len(taken)] = taken
        self.filled += len(taken)
        return data[len(taken) :]

    @property
    def full(self) -> bool:
        return self.filled == len(self.current)

    def hand_over(self) -> memoryview:
        """The filled part of the current buffer; filling goes on in the next one."""
        batch = self.current[: self.filled]
        self.turn = (self.turn + 1) % len(self.buffers)
        self.filled = 0
        return batch

    def drop(self) -> None:
        """Let go of every buffer (the upload is about to wait for the budget).

        Called only between batches, when no buffer is being filled; the
        writer keeps the ones it still works on alive until it is done with
        them, and the ring makes new ones when filling resumes.
        """
        self.buffers = [None] * len(self.buffers)
