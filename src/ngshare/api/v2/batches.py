"""v2 blob batches: many small blobs in one request, each way.

A class cycle moves five notebooks per student; one request per notebook
costs more server time than the bytes do. So small blobs travel together:

- `POST /courses/{course}/blobs` uploads several blobs in one body: first one
  line of JSON, `{"blobs": [{"sha256": ..., "size": ...}, ...]}` and a newline,
  then the blobs' bytes back to back in that order. Each blob is hashed as it
  arrives and stored only when it matches; blobs the server already holds are
  read past and kept. Large files go through the resumable single-blob upload.
- `POST /courses/{course}/blobs/batch` with `{"sha256": [...]}` answers the
  bytes of those blobs back to back, in the order asked (`Ngshare-Blob-Sizes`
  gives each size); the client splits them by size and checks each hash.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import AsyncIterator
from typing import TypeVar

import anyio
from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field, ValidationError
from starlette.requests import ClientDisconnect

from ngshare.api.v2.blobs import begin_upload, check_file_count, check_sha256
from ngshare.api.v2.deps import CourseMember, State
from ngshare.api.v2.schemas import HashList
from ngshare.api.v2.transfer import ranges_response
from ngshare.bodies import declared_length
from ngshare.config import Limits
from ngshare.domain.access import readable_blobs
from ngshare.errors import BadRequest, NotFound, TooLarge
from ngshare.storage import BlobStore, Digest, HashMismatch
from ngshare.storage.base import CHUNK

router = APIRouter(tags=["v2: blobs"])

M = TypeVar("M", bound=BaseModel)

BATCH_MEDIA_TYPE = "application/vnd.ngshare.blob-batch"
HEADER_LIMIT = 1024 * 1024  # the JSON line: ~80 bytes per blob
IN_MEMORY = 1024 * 1024  # blobs up to this size are verified in memory, larger ones streamed


class BatchBlob(BaseModel):
    sha256: str
    size: int = Field(ge=0)


class BatchHeader(BaseModel):
    blobs: list[BatchBlob]


class BatchStored(BaseModel):
    stored: list[str] = Field(description="Blobs written by this request")
    present: list[str] = Field(description="Blobs the server already held (their bytes skipped)")


class BodyReader:
    """Exact-size reads over a request's body chunks."""

    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self.chunks = chunks
        self.buffer = bytearray()
        self.ended = False

    async def more(self) -> bool:
        """Append the next non-empty chunk to `buffer`; False at the body's end."""
        while not self.ended:
            try:
                chunk = await self.chunks.__anext__()
            except StopAsyncIteration:
                self.ended = True
                break
            if chunk:
                self.buffer += chunk
                return True
        return False

    async def line(self, limit: int) -> bytes:
        while (end := self.buffer.find(b"\n")) < 0:
            if len(self.buffer) > limit or not await self.more():
                raise BadRequest("The batch must start with one line of JSON naming its blobs")
        line = bytes(self.buffer[:end])
        del self.buffer[: end + 1]
        return line

    async def pieces(self, size: int) -> AsyncIterator[bytes]:
        """The next `size` bytes in pieces of at most CHUNK; BadRequest when the body ends."""
        left = size
        while left:
            if not self.buffer and not await self.more():
                raise _ended_early(left)
            piece = bytes(self.buffer[: min(left, CHUNK)])
            del self.buffer[: len(piece)]
            left -= len(piece)
            yield piece

    async def exact(self, size: int) -> bytes:
        """The next `size` bytes at once (a small blob: one copy, not a join of pieces)."""
        while len(self.buffer) < size:
            if not await self.more():
                raise _ended_early(size - len(self.buffer))
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data

    async def skip(self, size: int) -> None:
        """Read past the next `size` bytes without keeping them."""
        left = size
        while left:
            if not self.buffer and not await self.more():
                raise _ended_early(left)
            taken = min(left, len(self.buffer))
            del self.buffer[:taken]
            left -= taken

    async def drain(self, limit: int) -> None:
        """Read and drop the rest of the body, up to about `limit` bytes.

        For a refusal: a client still sending hears the answer instead of a
        reset connection. A longer body is left unread (the connection closes).
        """
        seen = len(self.buffer)
        self.buffer.clear()
        with contextlib.suppress(ClientDisconnect):
            while seen <= limit and await self.more():
                seen += len(self.buffer)
                self.buffer.clear()

    async def at_end(self) -> bool:
        return not self.buffer and not await self.more()


def _ended_early(left: int) -> BadRequest:
    return BadRequest(f"The body ended {left} bytes before the blobs it announced")


async def first_line(reader: BodyReader, limit: int, model: type[M], what: str) -> M:
    """The body's first line, parsed as `model`; a 400 naming the `what` (batch,
    bundle) when the line is missing, too long or not valid."""
    return line_as(model, await first_line_json(reader, limit, what), what)


def line_as(model: type[M], line: object, what: str) -> M:
    """A first line's JSON as `model`; a 400 naming the `what` when it does not fit."""
    try:
        return model.model_validate(line)
    except ValidationError as exc:
        raise BadRequest(f"The {what}'s first line is not valid: {str(exc)[:300]}") from None


async def first_line_json(reader: BodyReader, limit: int, what: str) -> object:
    """The body's first line as JSON; a 400 naming the `what` when it is missing,
    too long or not JSON."""
    try:
        line = await reader.line(limit)
    except ClientDisconnect:
        raise BadRequest(f"Connection closed before the {what}'s first line") from None
    try:
        return json.loads(line)
    except ValueError as exc:
        raise BadRequest(f"The {what}'s first line is not valid: {str(exc)[:300]}") from None


def check_blobs(blobs: list[BatchBlob], limits: Limits) -> list[BatchBlob]:
    """Announced blobs within the limits on file count and file size, with valid hashes."""
    check_file_count(limits, len(blobs))
    for blob in blobs:
        check_sha256(blob.sha256)
        if blob.size > limits.file_bytes:
            mib = limits.file_bytes // 2**20
            raise TooLarge(f"The file exceeds the largest file limit of {mib} MiB")
    return blobs  # the total is limited where it matters: the release or submission commit


@router.post(
    "/courses/{course}/blobs",
    response_model=BatchStored,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {BATCH_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def upload_batch(request: Request, ctx: CourseMember, state: State) -> BatchStored:
    """Store several blobs sent in one body (see the module docstring for the framing)."""
    async with state.memory.hold(body_bytes(request)):
        reader = BodyReader(request.stream())
        header = await first_line(reader, HEADER_LIMIT, BatchHeader, "batch")
        blobs = check_blobs(header.blobs, state.limits)
        return await receive_blobs(reader, blobs, state.store, ctx.user.name)


def body_bytes(request: Request) -> int:
    """What a batch, bundle or manifest request may hold in memory at once, to take
    from the server's memory budget before any of its body is read: its size, and
    at most a group of small blobs (`SmallBlobs`) plus the one being read.

    Before, not after the first line: a request waiting for the budget would
    otherwise hold the body's first chunk while the server read the next.
    """
    most = 5 * IN_MEMORY
    declared = declared_length(request)
    return most if declared is None else min(declared, most)


async def receive_blobs(
    reader: BodyReader, blobs: list[BatchBlob], store: BlobStore, user: str
) -> BatchStored:
    """Store `blobs` as their bytes follow in `reader`, then check the body ends there.

    Whole, verified blobs that arrived before an error or a dropped connection
    are kept: a retry need not send them again.
    """
    stored: list[str] = []
    present: list[str] = []
    small = SmallBlobs(store)
    try:
        held = await anyio.to_thread.run_sync(_touch_all, store, blobs)
        for blob in blobs:
            if blob.sha256 in held:
                await reader.skip(blob.size)
                present.append(blob.sha256)
                continue
            if blob.size <= IN_MEMORY:
                await small.add(blob.sha256, await reader.exact(blob.size))
            else:
                await _store_streamed(reader, store, blob, user)
            stored.append(blob.sha256)
        if not await reader.at_end():
            raise BadRequest("The body holds more bytes than the blobs it announced")
        await small.flush()
    except ClientDisconnect:
        await small.flush()
        raise BadRequest(f"Connection closed after {len(stored) + len(present)} blobs") from None
    except BadRequest:
        await small.flush()
        raise
    return BatchStored(stored=stored, present=present)


def _touch_all(store: BlobStore, blobs: list[BatchBlob]) -> set[str]:
    """The announced blobs the store holds (touched, so the collector keeps them):
    one trip to a worker thread for the whole batch, not one per blob."""
    return {blob.sha256 for blob in blobs if store.touch(blob.sha256)}


class SmallBlobs:
    """Small blobs read whole, verified and stored a few MiB at a time, a group at once.

    Each blob is hashed, written to a temporary file, fsynced and renamed into
    place on a worker thread of its own. Parallel threads let the filesystem
    commit a group's fsyncs together (one journal commit instead of one per
    notebook), and the hashing stays off the event loop: hashlib releases the
    GIL, so it overlaps other requests' Python work. Only sha256 is computed;
    v1 fills in an md5 on its first read of a blob (`filesets.with_md5`).
    A group is stored once it reaches `limit`, so it holds less than
    limit + IN_MEMORY bytes (what `body_bytes` takes from the memory budget).
    """

    def __init__(self, store: BlobStore, limit: int = 4 * IN_MEMORY) -> None:
        self.store = store
        self.limit = limit
        self.pending: list[tuple[str, bytes]] = []
        self.size = 0

    async def add(self, sha256: str, data: bytes) -> None:
        self.pending.append((sha256, data))
        self.size += len(data)
        if self.size >= self.limit:
            await self.flush()

    async def flush(self) -> None:
        """Store the pending blobs that match their hashes; 400 naming the first that does not."""
        pending, self.pending, self.size = self.pending, [], 0
        wrong: list[str | None] = [None] * len(pending)

        async def store(index: int) -> None:
            sha256, data = pending[index]
            wrong[index] = await anyio.to_thread.run_sync(_store_verified, self.store, sha256, data)

        if len(pending) == 1:
            await store(0)
        else:
            async with anyio.create_task_group() as group:
                for index in range(len(pending)):
                    group.start_soon(store, index)
        for (sha256, _data), actual in zip(pending, wrong, strict=True):
            if actual is not None:
                raise _mismatch(sha256, actual)


def _store_verified(store: BlobStore, sha256: str, data: bytes) -> str | None:
    """Store `data` if it hashes to `sha256`; otherwise store nothing and return its hash."""
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        return actual
    store.put_bytes(data, Digest(sha256=actual, md5="", size=len(data)))
    return None


async def _store_streamed(reader: BodyReader, store: BlobStore, blob: BatchBlob, user: str) -> None:
    upload = await begin_upload(store, blob.sha256, user, blob.size)
    try:
        if upload.offset:  # an interrupted single-blob upload: start that one afresh
            await anyio.to_thread.run_sync(upload.abort)
            upload = await begin_upload(store, blob.sha256, user, blob.size)
        async for piece in reader.pieces(blob.size):
            await anyio.to_thread.run_sync(upload.write, piece)
        await anyio.to_thread.run_sync(upload.finish)
    except HashMismatch as exc:
        raise _mismatch(blob.sha256, exc.actual) from None
    except BaseException:
        await anyio.to_thread.run_sync(upload.abort)
        raise


def _mismatch(expected: str, actual: str) -> BadRequest:
    return BadRequest(
        f"The bytes of blob {expected} hash to {actual}; that blob was not stored",
        reason="hash_mismatch",
    )


@router.post(
    "/courses/{course}/blobs/batch",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def download_batch(body: HashList, request: Request, ctx: CourseMember, state: State) -> Response:
    """The listed blobs' bytes back to back, in the order asked."""
    check_file_count(state.limits, len(body.sha256), per="request")
    hashes = [check_sha256(value) for value in body.sha256]
    with state.db.read() as session:
        allowed = readable_blobs(session, ctx, hashes)
    sizes = []
    for sha256 in hashes:
        size = state.store.size(sha256) if sha256 in allowed else None
        if size is None:
            raise NotFound(f"File not found: {sha256}")
        sizes.append(size)
    headers = {
        "Content-Length": str(sum(sizes)),
        "Ngshare-Blob-Sizes": ",".join(map(str, sizes)),
    }
    ranges = [(sha256, 0, size) for sha256, size in zip(hashes, sizes, strict=True)]
    return ranges_response(request, state.store, state.memory, ranges, headers)
