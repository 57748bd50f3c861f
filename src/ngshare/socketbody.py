"""Large upload bodies read from the socket straight into the upload's buffers.

Why: uvicorn hands a request body to the application in copies. Each read
of the socket is a new bytes object, httptools slices the body out of it
(a copy), uvicorn appends that to the request's bytearray (a copy) and
`receive()` returns `bytes()` of it (a copy), which the upload then copies
into its batch buffer: four copies in the server's memory for every byte,
and a pass of the event loop for every read of at most 256 KiB. A 4 GiB
upload by curl spent more of the server's CPU on that than on its sha256
(docs/benchmarks.md, sixteenth session). Read from the socket with
`recv_into`, each byte is copied once, by the kernel, into the buffer that
the hashing thread and the O_DIRECT write then use as it is.

How: `ZeroCopyApp` (ngshare.zerocopy) lends uvicorn's httptools request
cycle to large uploads. `SocketBody.take` stops uvicorn from reading the
connection, answers a waiting `Expect: 100-continue`, takes the few bytes
of body uvicorn has already read, and marks the connection to close after
the response: httptools never sees the rest of the body, so the connection
cannot carry another request. The rest is read on worker threads from a
duplicate of the socket's descriptor, a batch at a time. Only bodies with a
Content-Length qualify (not chunked ones), and nothing may call the
request's `receive` afterwards: uvicorn would start reading again.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable

import anyio
import anyio.to_thread
from starlette.requests import Request

from ngshare.bodies import declared_length

EXTENSION = "ngshare.socket_body"  # scope["extensions"] key: the connection, where lent
RECEIVED = "ngshare.socket_body_bytes"  # scope["state"] key: body bytes read past uvicorn
POLL = 0.5  # seconds a worker thread waits in one recv before looking at the clock again
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class SocketBody:
    """The rest of a request's body, `length` bytes, read from the lent connection."""

    def __init__(
        self, request: Request, sock: socket.socket, head: bytes, length: int, stall_timeout: float
    ) -> None:
        self.scope = request.scope
        self.sock = sock
        self.head = memoryview(head)  # what uvicorn read before the take
        self.remaining = length - len(head)
        self.stall_timeout = stall_timeout
        self.stalled = False
        # Its own worker thread, not one of the `--worker-threads` the routes share: a
        # read waits on the client, up to `stall_timeout`, and a few slow uploaders
        # must not leave the other requests without threads.
        self._reader = anyio.CapacityLimiter(1)

    @property
    def left(self) -> int:
        """The body's bytes not yet handed out: the head's, then the socket's."""
        return len(self.head) + self.remaining

    @classmethod
    def take(cls, request: Request, most: int, stall_timeout: float) -> SocketBody | None:
        """Take over the reading of the request's body, or None where that cannot be:
        no lent connection, no Content-Length, or a body longer than `most` bytes
        (uvicorn's reads find where it goes too far)."""
        cycle = request.scope.get("extensions", {}).get(EXTENSION)
        if cycle is None or cycle.disconnected or not cycle.more_body:
            return None
        length = declared_length(request)
        if length is None or not 0 < length <= most:
            return None
        fd = cycle.transport.get_extra_info("socket").fileno()
        sock = socket.socket(fileno=os.dup(fd))  # first: if this fails, nothing has changed
        sock.settimeout(POLL)  # the descriptor stays non-blocking: the loop shares it
        cycle.flow.pause_reading()  # everything uvicorn read is now in cycle.body
        cycle.keep_alive = False
        if cycle.waiting_for_100_continue and not cycle.transport.is_closing():
            cycle.transport.write(_CONTINUE)
            cycle.waiting_for_100_continue = False
        head, cycle.body = bytes(cycle.body), type(cycle.body)()
        return cls(request, sock, head, length, stall_timeout)

    async def read_into(
        self, view: memoryview, then: Callable[[memoryview], object] | None = None
    ) -> int:
        """Fill `view` with the body's next bytes; fewer only at the body's end, when the
        client left, or when no byte came for `stall_timeout` (then `stalled` is set).

        `then`, when given, is called with the bytes on the reader's thread once they
        fill `view` (or end the body): work on them without a second trip to a
        thread (for a v1 form's decoding with 32 uploads at once, that trip cost
        about a sixth of the submit phase, docs/benchmarks.md, eighteenth
        session). What it raises, read_into raises.
        """
        want = min(len(view), self.left)
        got = min(len(self.head), want)
        view[:got] = self.head[:got]
        self.head = self.head[got:]
        if got < want or (then is not None and got):
            return await anyio.to_thread.run_sync(
                self._fill_then, view, got, want, then, limiter=self._reader
            )
        self._count(got)
        return got

    def _fill_then(
        self, view: memoryview, got: int, want: int, then: Callable[[memoryview], object] | None
    ) -> int:
        if got < want:
            got += self._fill(view[got:want])
        self._count(got)
        if then is not None and got == want:
            then(view[:got])
        return got

    def _count(self, got: int) -> None:
        state = self.scope.setdefault("state", {})
        state[RECEIVED] = state.get(RECEIVED, 0) + got

    def _fill(self, view: memoryview) -> int:
        """On a worker thread: recv into `view` until it is full, the body ends, or the
        connection does; counted off `remaining`."""
        got, stalled = 0, 0.0
        while got < len(view):
            try:
                count = self.sock.recv_into(view[got:])
            except TimeoutError:
                stalled += POLL
                if stalled >= self.stall_timeout:
                    self.stalled = True
                    break
                continue
            except ConnectionError:
                count = 0
            if count == 0:
                self.remaining = 0  # nothing more will come
                break
            got += count
            self.remaining -= count
            stalled = 0.0
        return got

    def close(self) -> None:
        """Close the duplicate descriptor (uvicorn closes the connection after the response)."""
        self.sock.close()
