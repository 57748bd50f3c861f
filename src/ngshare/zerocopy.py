"""Blob bodies sent by sendfile(2): the kernel moves page-cache pages to the socket.

Why: a class fetching a 20 MB dataset moves gigabytes, and streamed through
Python each byte is copied twice (file to buffer, buffer to socket) plus a
pass of the event loop per 256 KiB piece. With sendfile the server's CPU in
the class cycle's fetch phase fell from 6.9-7.0 s to 3.4-4.4 s, and the phase
from 8.7-9.2 s to 6.0-7.3 s (docs/benchmarks.md, fifteenth session).

ASGI has no standard way to hand a server a file descriptor (`pathsend` sends
whole files only, and uvicorn implements neither it nor `zerocopysend`), so
`ZeroCopyApp`, the outermost ASGI layer, recognises uvicorn's httptools
protocol, the one ngshare runs under, and lends its connection to
`SendfileBody`. It writes the body itself, after uvicorn has written the
headers, and counts it off uvicorn's Content-Length bookkeeping, so that
uvicorn then completes the response as if it had sent the bytes. Any other
server, TLS, or `--no-sendfile` gets the streamed response.

The pages a step sends are looked for in the page cache first
(`preadv(RWF_NOWAIT)` of their first and last byte): sendfile would wait for
the disk on the event loop otherwise, so a step that needs the disk runs on a
worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from ngshare.socketbody import EXTENSION as BODY
from ngshare.storage.base import BlobStore
from ngshare.storage.pieces import NOWAIT

EXTENSION = "ngshare.sendfile"  # scope["extensions"] key: the connection, where lent
SENT = "ngshare.sendfile_bytes"  # scope["state"] key: body bytes sent past uvicorn (metrics)
STEP = 4 * 1024 * 1024  # bytes asked of one sendfile call
YIELD_EVERY = 16 * 1024 * 1024  # bytes sent between turns of the event loop
_HTTPTOOLS = "uvicorn.protocols.http.httptools_impl"
_CAN_SENDFILE = hasattr(os, "sendfile")  # not on Windows
_FIELDS = ("disconnected", "more_body", "keep_alive", "flow", "waiting_for_100_continue")


class ZeroCopyApp:
    """Wrap the application served by uvicorn; lends the connection to blob responses
    (`sendfile`) and to large uploads' bodies (`socket_body`, ngshare.socketbody)."""

    def __init__(self, app: ASGIApp, sendfile: bool = True, socket_body: bool = True) -> None:
        self.app = app
        self.keys = [
            key
            for key, wanted in ((EXTENSION, sendfile and _CAN_SENDFILE), (BODY, socket_body))
            if wanted
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.keys:
            cycle = getattr(send, "__self__", None)
            if _lendable(cycle):
                scope.setdefault("extensions", {}).update(dict.fromkeys(self.keys, cycle))
        await self.app(scope, receive, send)


def _lendable(cycle: Any) -> bool:
    """uvicorn's httptools request cycle, over plain TCP, with the fields that this
    module and ngshare.socketbody use."""
    return (
        type(cycle).__module__ == _HTTPTOOLS
        and isinstance(getattr(cycle, "expected_content_length", None), int)
        and isinstance(getattr(cycle, "body", None), bytes | bytearray)
        and all(hasattr(cycle, name) for name in _FIELDS)
        and cycle.transport.get_extra_info("sslcontext") is None
        and cycle.transport.get_extra_info("socket") is not None
    )


class SendfileBody:
    """`count` bytes of an open file from `offset`, sent on the lent connection."""

    def __init__(self, cycle: Any, fd: int, offset: int, count: int) -> None:
        self.cycle = cycle
        self.transport = cycle.transport
        self.fd = fd
        self.offset = offset
        self.count = count
        self.sent = 0

    async def send(self) -> bool:
        """Send the bytes (after uvicorn's own writes); False if the connection failed,
        which is then closed. Raises only what sendfile raises for the file's side."""
        loop = asyncio.get_running_loop()
        out = os.dup(self.transport.get_extra_info("socket").fileno())
        try:
            await self._drained()
            unyielded = 0
            while self.sent < self.count and not self.cycle.disconnected:
                try:
                    sent = await self._step(out)
                except BlockingIOError:
                    await _writable(loop, out)
                    continue
                except (BrokenPipeError, ConnectionError):
                    break
                if sent == 0:
                    break  # the file is shorter than it was: the response comes up short
                self.sent += sent
                self.cycle.expected_content_length -= sent
                unyielded += sent
                if unyielded >= YIELD_EVERY:
                    await asyncio.sleep(0)
                    unyielded = 0
        finally:
            os.close(out)
        if self.sent < self.count:
            await abandon(self.cycle)
            return False
        return True

    async def _drained(self) -> None:
        """Wait until what uvicorn wrote (the headers) has left its buffer."""
        while self.transport.get_write_buffer_size() and not self.cycle.disconnected:
            await asyncio.sleep(0.001)

    async def _step(self, out: int) -> int:
        position = self.offset + self.sent
        size = min(STEP, self.count - self.sent)
        if _cached(self.fd, position, size):
            return os.sendfile(out, self.fd, position, size)
        return await anyio.to_thread.run_sync(os.sendfile, out, self.fd, position, size)


async def abandon(cycle: Any) -> None:
    """Close a connection whose body could not be sent whole; give uvicorn a turn to
    see it closed, so that it does not report the response as unfinished."""
    cycle.transport.close()
    for _ in range(3):
        if cycle.disconnected:
            return
        await asyncio.sleep(0)


def _cached(fd: int, position: int, size: int) -> bool:
    """Whether the first and the last byte of the range are in the page cache."""
    if NOWAIT is None:
        return False
    probe = bytearray(1)
    try:
        for at in {position, position + size - 1}:
            if os.preadv(fd, [probe], at, NOWAIT) != 1:
                return False
    except OSError:  # BlockingIOError (not cached), or a filesystem without RWF_NOWAIT
        return False
    return True


async def _writable(loop: asyncio.AbstractEventLoop, fd: int) -> None:
    """Wait until the socket takes more (or reports an error, which the next call raises).

    `fd` is a duplicate of the connection's descriptor: the event loop refuses
    to watch a descriptor its transport owns."""
    ready = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_writer(fd, wake)
    try:
        await ready
    finally:
        with contextlib.suppress(Exception):
            loop.remove_writer(fd)


@dataclass(frozen=True)
class FilePart:
    """`count` bytes of a local file from `offset`."""

    path: Path
    offset: int
    count: int


def file_parts(
    request: Request, store: BlobStore, ranges: list[tuple[str, int, int]]
) -> list[FilePart] | None:
    """The (sha256, offset, count) ranges as parts of local files, when the connection
    is lent and the store keeps its blobs on this machine; None: stream them."""
    if EXTENSION not in request.scope.get("extensions", {}):
        return None
    parts = []
    for sha256, offset, count in ranges:
        path = store.local_file(sha256)
        if path is None:
            return None
        parts.append(FilePart(path, offset, count))
    return parts


class SendfileResponse(Response):
    """A body of bytes and file parts, the parts sent by sendfile(2) on the lent
    connection. Each file is opened when its turn comes, on the event loop: the
    route has just looked at it (its size), so the open finds it in the kernel's
    caches."""

    def __init__(
        self,
        request: Request,
        parts: list[bytes | FilePart],
        status: int = 200,
        headers: dict[str, str] | None = None,
        media_type: str = "application/octet-stream",
    ) -> None:
        super().__init__(None, status, headers, media_type)
        self.cycle = request.scope["extensions"][EXTENSION]
        self.parts = parts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        if scope["method"] != "HEAD":
            sent = 0
            try:
                for part in self.parts:
                    if isinstance(part, bytes):
                        await send({"type": "http.response.body", "body": part, "more_body": True})
                    elif part.count:
                        done, count = await self._send_file(part)
                        sent += count
                        if not done:
                            return  # the client left, or the file shrank: the connection is closed
            finally:
                scope.setdefault("state", {})[SENT] = sent
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _send_file(self, part: FilePart) -> tuple[bool, int]:
        try:
            fd = os.open(part.path, os.O_RDONLY)
        except FileNotFoundError:  # removed since the route looked: cut the response off
            await abandon(self.cycle)
            return False, 0
        try:
            body = SendfileBody(self.cycle, fd, part.offset, part.count)
            return await body.send(), body.sent
        finally:
            os.close(fd)
