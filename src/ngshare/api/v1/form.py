"""The v1 request body, read as a stream: small fields kept, `files` decoded on the fly.

Heavy decoding runs in a worker thread, a megabyte or more at a time, so the
event loop stays free while a 30 MB submission arrives. A body of
SOCKET_MIN bytes or more is read from the socket itself where the server
lends it (`ngshare.socketbody`), a BATCH at a time into one buffer, and
decoded on the thread that read it: uvicorn hands a body over in reads of at
most 256 KiB, each copied three times and passed through the event loop and
the middleware, and each batch then took a trip to a worker thread. With
32 students submitting 31 MB at once the submit phase took 15.7-16.2 s
instead of 21.5 s (docs/benchmarks.md, eighteenth session).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import anyio
from starlette.requests import ClientDisconnect, Request

from ngshare.api.v1.known import KnownFiles
from ngshare.api.v1.wire import (
    SMALL_FIELD_LIMIT,
    FilesParser,
    FilesResult,
    PercentDecoder,
    unquote_plus_bytes,
)
from ngshare.bodies import declared_length
from ngshare.config import Limits
from ngshare.errors import BadRequest, BodyStalled, TooLarge
from ngshare.socketbody import SocketBody
from ngshare.storage.base import Staging

FORM_TYPE = "application/x-www-form-urlencoded"
BATCH = 1024 * 1024
SOCKET_MIN = 4 * BATCH  # bodies this large are read from the socket, where it is lent
DISCONNECTED = "Client disconnected before the request body was complete"


class FormDecoder:
    """Incremental form parser; the field named `streamed` goes to a FilesParser."""

    def __init__(
        self,
        stage: Callable[[], Staging],
        limits: Limits,
        streamed: str = "files",
        known: KnownFiles | None = None,
    ):
        self.stage = stage
        self.limits = limits
        self.known = known
        self.streamed = streamed
        self.fields: dict[str, str] = {}
        self.files: FilesResult | None = None
        self.name = b""
        self.in_value = False
        self.raw = bytearray()
        self.parser: FilesParser | None = None
        self.percent: PercentDecoder | None = None

    def feed(self, data: bytes) -> None:
        while data:
            if not self.in_value:
                data = self._read_name(data)
                continue
            end = data.find(b"&")
            piece, data = (data, b"") if end == -1 else (data[:end], data[end + 1 :])
            self._value(piece)
            if end != -1:
                self._end_field()

    def close(self) -> None:
        if self.in_value or self.name:
            self._end_field()

    def _read_name(self, data: bytes) -> bytes:
        stops = [i for i in (data.find(b"="), data.find(b"&")) if i != -1]
        if not stops:
            self.name += data
            self._check_small(len(self.name))
            return b""
        stop = min(stops)
        self.name += data[:stop]
        if data[stop : stop + 1] == b"&":
            self._end_field()
        else:
            self._start_value()
        return data[stop + 1 :]

    def _start_value(self) -> None:
        self.in_value = True
        if self._decoded_name() == self.streamed:
            if self.files is not None:
                self.files.discard()  # a repeated field: the last one counts
            self.parser = FilesParser(self.stage, self.limits, self.known)
            self.percent = PercentDecoder()

    def _value(self, piece: bytes) -> None:
        if self.parser is not None and self.percent is not None:
            if self.parser.comparing:
                piece = self.parser.compare(self.percent.take_pending() + piece)
            if piece:
                self.parser.feed(self.percent.feed(piece))
        else:
            self.raw += piece
            self._check_small(len(self.raw))

    def _end_field(self) -> None:
        name = self._decoded_name()
        if self.parser is not None and self.percent is not None:
            self.parser.feed(self.percent.close())
            self.files = self.parser.close()
            self.parser = self.percent = None
        elif name:
            self.fields[name] = _text(unquote_plus_bytes(bytes(self.raw)))
        self.name, self.raw, self.in_value = b"", bytearray(), False

    def _decoded_name(self) -> str:
        return _text(unquote_plus_bytes(self.name))

    def _check_small(self, size: int) -> None:
        if size > SMALL_FIELD_LIMIT:
            raise TooLarge("A form field other than `files` exceeds 1 MiB")

    def discard(self) -> None:
        if self.parser is not None:
            self.parser.discard()
        if self.files is not None:
            self.files.discard()


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("Request body is not valid form data") from None


async def read_form(
    request: Request, decoder: FormDecoder, limit: int, stall_timeout: float = 60
) -> None:
    """Feed the body to `decoder`; 413 as soon as it passes `limit` bytes, 408 when
    a body read from the socket stalls for `stall_timeout` seconds."""
    message = f"Request body exceeds the server limit of {limit // 2**20} MiB"
    declared = declared_length(request)
    if declared is not None and declared > limit:
        raise TooLarge(message)
    content_type = request.headers.get("content-type", FORM_TYPE).split(";")[0].strip()
    body = None
    if declared is not None and declared >= SOCKET_MIN and content_type == FORM_TYPE:
        body = SocketBody.take(request, limit, stall_timeout)
    if body is None:
        await _read_stream(request, decoder, limit, message, content_type)
    else:
        try:
            await _read_socket(body, decoder, stall_timeout)
        finally:
            body.close()
    decoder.close()


async def _read_stream(
    request: Request, decoder: FormDecoder, limit: int, message: str, content_type: str
) -> None:
    """The body as uvicorn hands it over, fed to `decoder` a BATCH or more at a time."""
    batch: list[bytes] = []  # joined once per BATCH: one copy, not a growing buffer's
    batched = size = 0
    try:
        async for chunk in request.stream():
            if chunk and content_type != FORM_TYPE:
                raise BadRequest(f"Request body must be {FORM_TYPE}")
            size += len(chunk)
            if size > limit:
                raise TooLarge(message)
            batch.append(chunk)
            batched += len(chunk)
            if batched >= BATCH:
                await anyio.to_thread.run_sync(_feed, decoder, b"".join(batch))
                batch, batched = [], 0
    except ClientDisconnect:
        raise BadRequest(DISCONNECTED) from None
    if batch:
        await anyio.to_thread.run_sync(_feed, decoder, b"".join(batch))


async def _read_socket(body: SocketBody, decoder: FormDecoder, stall_timeout: float) -> None:
    """The body read from the lent socket into one reused buffer, BATCH bytes at a time
    (its declared length, already checked against the limit, is all that is read)."""
    view = memoryview(bytearray(BATCH))
    while body.left:
        want = min(BATCH, body.left)
        # decoded on the reader's thread, as soon as read (SocketBody.read_into)
        got = await body.read_into(view[:want], then=partial(_feed_view, decoder))
        if got < want:
            raise BodyStalled(stall_timeout) if body.stalled else BadRequest(DISCONNECTED)


def _feed_view(decoder: FormDecoder, view: memoryview) -> None:
    _feed(decoder, bytes(view))


def _feed(decoder: FormDecoder, data: bytes) -> None:
    if not data.isascii():  # form encoding escapes every other byte
        raise BadRequest("Request body is not valid form data")
    decoder.feed(data)
