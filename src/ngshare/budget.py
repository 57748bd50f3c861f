"""A server-wide cap on the file bytes that requests hold in memory at once.

Why: each request holds little (a v2 submission reads its small notebooks
whole, about 1 MB; a download holds a piece being sent and the next one
read), but at a deadline every student acts at once. With 500 students at
once the server's peak memory reached 269-402 MB in four runs
(`bench.compare --students 500 --concurrency 500`, docs/benchmarks.md).

Requests share the budget in three ways:

- An upload's small files are read whole. A request takes their bytes
  (`hold`) before it reads its body, and waits its turn, first come first
  served, while they are taken; its unread bytes wait in the kernel's socket
  buffers. These requests are short (a few MiB read and written), so the
  queue moves.
- A download never waits: its pieces shrink instead (`piece`). Each
  download holds two pieces (the one being sent and the next), so the
  pieces are sized for all downloads in flight to fit in the budget, down
  to MIN_PIECE. A download waiting for room could wait for whole
  multi-gigabyte downloads to end, long past its client's read timeout.
- A file over 8 MiB, uploaded in a request of its own, borrows one batch of
  1-4 MiB at a time (`api.v2.receiving.BatchLoans`): taken before the batch is
  read, given back once it is written. Holding the budget for a whole upload
  would let a slow client keep it for as long as its upload lasts.

Only the event loop's thread uses a budget (anyio events are not
thread-safe).
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterable, AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TypeVar

import anyio

from ngshare.storage.pieces import SEND_CHUNK

T = TypeVar("T")

MIN_PIECE = 16 * 1024  # smaller pieces would cost more in per-piece work than they save


@dataclass(eq=False)
class _Waiter:
    size: int
    event: anyio.Event = field(default_factory=anyio.Event)
    granted: bool = False


class MemoryBudget:
    """A weighted semaphore over bytes, fair (FIFO), so that a large request is
    not starved by a stream of small ones. A request larger than the whole
    budget takes all of it: it waits until nothing else is held, then runs
    alone."""

    def __init__(self, limit: int) -> None:
        self.limit = max(limit, 1)
        self.held = 0
        self.waits = 0  # how many acquisitions had to wait, since the start
        self.downloads = 0  # streamed responses in flight
        self._queue: deque[_Waiter] = deque()

    @property
    def waiting(self) -> int:
        return len(self._queue)

    async def acquire(self, size: int) -> int:
        """Hold `size` bytes (at most the limit), waiting while others hold too much.

        Returns what was taken, to be given back to `release`.
        """
        size = min(max(size, 0), self.limit)
        if not self._queue and self.held + size <= self.limit:
            self.held += size
            return size
        waiter = _Waiter(size)
        self._queue.append(waiter)
        self.waits += 1
        try:
            await waiter.event.wait()
        except BaseException:  # cancelled (the client left): give back or leave the queue
            if waiter.granted:
                self.release(size)
            else:
                self._queue.remove(waiter)
                self._grant()  # the head leaving may let the next ones in
            raise
        return size

    def would_wait(self, size: int) -> bool:
        """Whether `acquire(size)` would wait now (others queue, or too much is held)."""
        return bool(self._queue) or self.held + min(max(size, 0), self.limit) > self.limit

    def release(self, size: int) -> None:
        self.held -= size
        self._grant()

    def _grant(self) -> None:
        while self._queue and self.held + self._queue[0].size <= self.limit:
            waiter = self._queue.popleft()
            self.held += waiter.size
            waiter.granted = True
            waiter.event.set()

    @asynccontextmanager
    async def hold(self, size: int) -> AsyncIterator[None]:
        taken = await self.acquire(size)
        try:
            yield
        finally:
            self.release(taken)

    def piece(self, largest: int = SEND_CHUNK) -> int:
        """How many bytes a download reads next: its share of what uploads leave of
        the budget, two pieces for each download in flight, between MIN_PIECE and
        `largest`."""
        share = max(self.limit - self.held, 0) // (2 * max(self.downloads, 1))
        return max(MIN_PIECE, min(largest, share - share % MIN_PIECE))

    async def streamed(self, body: AsyncIterable[T]) -> AsyncIterator[T]:
        """`body`'s items, counted as a download in flight while they last (a
        response body whose source reads `piece()` bytes at a time)."""
        iterator = aiter(body)
        self.downloads += 1
        try:
            async for item in iterator:
                yield item
        finally:
            self.downloads -= 1
            close = getattr(iterator, "aclose", None)
            if close is not None:
                await close()
