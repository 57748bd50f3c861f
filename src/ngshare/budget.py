"""A server-wide cap on the file bytes that requests hold in memory at once.

Why: each request holds little (a v2 submission reads its small notebooks
whole, about 1 MB; a download holds one 256 KiB piece while it is sent), but
at a deadline every student acts at once. With 500 students submitting
together the server's peak memory reached 402 MB, and with 500 fetching,
296 MB (`bench.compare --students 500 --concurrency 500`). Under the cap, a
request that would exceed it waits its turn, first come first served, while
its unread bytes wait in the kernel's socket buffers. The server is busy on
its CPUs at such times anyway, so waiting costs little throughput.

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

T = TypeVar("T")

PIECE = 256 * 1024  # the largest piece of a blob download (storage.pieces.SEND_CHUNK)


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

    async def metered(self, body: AsyncIterable[T], piece: int = PIECE) -> AsyncIterator[T]:
        """`body`'s items, read once the response holds two pieces' worth of the budget,
        which it keeps until it ends (`piece`: the largest item `body` yields).

        Two pieces: the server's `send` returns once the connection's transport
        has taken a piece, not once it has gone out, and waits for it to drain
        only before writing the next; so a response holds one piece being sent
        and one just read. The whole amount is taken at once, for the whole
        response: taking it piece by piece, a response holding one piece would
        wait for the next while others did the same, and none could go on.
        """
        iterator = aiter(body)
        taken = 0
        try:
            taken = await self.acquire(2 * piece)
            async for item in iterator:
                yield item
        finally:
            self.release(taken)
            close = getattr(iterator, "aclose", None)
            if close is not None:
                await close()


UNLIMITED = MemoryBudget(2**62)  # for callers outside a server (tools, tests of one part)
