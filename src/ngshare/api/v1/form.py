"""The v1 request body, read as a stream: small fields kept, `files` decoded on the fly.

Heavy decoding runs in a worker thread, a megabyte or more at a time, so the
event loop stays free while a 30 MB submission arrives.
"""

from __future__ import annotations

from collections.abc import Callable

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
from ngshare.errors import BadRequest, TooLarge
from ngshare.storage.base import Staging

FORM_TYPE = "application/x-www-form-urlencoded"
BATCH = 1024 * 1024


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


async def read_form(request: Request, decoder: FormDecoder, limit: int) -> None:
    """Feed the body to `decoder`; 413 as soon as it passes `limit` bytes."""
    message = f"Request body exceeds the server limit of {limit // 2**20} MiB"
    declared = declared_length(request)
    if declared is not None and declared > limit:
        raise TooLarge(message)
    content_type = request.headers.get("content-type", FORM_TYPE).split(";")[0].strip()
    batch: list[bytes] = []  # joined once per BATCH: one copy, not a growing buffer's
    batched = size = 0
    try:
        async for chunk in request.stream():
            if chunk and content_type != FORM_TYPE:
                raise BadRequest(f"Request body must be {FORM_TYPE}")
            if not chunk.isascii():  # form encoding escapes every other byte
                raise BadRequest("Request body is not valid form data")
            size += len(chunk)
            if size > limit:
                raise TooLarge(message)
            batch.append(chunk)
            batched += len(chunk)
            if batched >= BATCH:
                await anyio.to_thread.run_sync(decoder.feed, b"".join(batch))
                batch, batched = [], 0
    except ClientDisconnect:
        raise BadRequest("Client disconnected before the request body was complete") from None
    if batch:
        await anyio.to_thread.run_sync(decoder.feed, b"".join(batch))
    decoder.close()
