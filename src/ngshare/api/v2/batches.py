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

import json
from collections.abc import AsyncIterator

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field, ValidationError
from starlette.requests import ClientDisconnect

from ngshare.api.v2.blobs import begin_upload, check_file_count, check_sha256
from ngshare.api.v2.deps import CourseMember, State
from ngshare.api.v2.schemas import HashList
from ngshare.config import Limits
from ngshare.domain.access import readable_blobs
from ngshare.errors import BadRequest, NotFound, TooLarge
from ngshare.storage import BlobStore, Digest, HashMismatch, hash_bytes
from ngshare.storage.base import CHUNK
from ngshare.storage.pieces import SEND_CHUNK, blob_pieces

router = APIRouter(tags=["v2: blobs"])

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

    async def _more(self) -> bool:
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
            if len(self.buffer) > limit or not await self._more():
                raise BadRequest("The batch must start with one line of JSON naming its blobs")
        line = bytes(self.buffer[:end])
        del self.buffer[: end + 1]
        return line

    async def pieces(self, size: int) -> AsyncIterator[bytes]:
        """The next `size` bytes in pieces of at most CHUNK; BadRequest when the body ends."""
        left = size
        while left:
            if not self.buffer and not await self._more():
                raise BadRequest(f"The body ended {left} bytes before the blobs it announced")
            piece = bytes(self.buffer[: min(left, CHUNK)])
            del self.buffer[: len(piece)]
            left -= len(piece)
            yield piece

    async def exact(self, size: int) -> bytes:
        return b"".join([piece async for piece in self.pieces(size)])

    async def at_end(self) -> bool:
        return not self.buffer and not await self._more()


def parse_header(line: bytes, limits: Limits) -> list[BatchBlob]:
    try:
        blobs = BatchHeader.model_validate(json.loads(line)).blobs
    except (ValueError, ValidationError) as exc:
        raise BadRequest(f"The batch's first line is not valid: {str(exc)[:300]}") from None
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
    reader = BodyReader(request.stream())
    stored: list[str] = []
    present: list[str] = []
    small = SmallBlobs(state.store)
    try:
        blobs = parse_header(await reader.line(HEADER_LIMIT), state.limits)
        for blob in blobs:
            if await anyio.to_thread.run_sync(state.store.touch, blob.sha256):
                async for _piece in reader.pieces(blob.size):
                    pass
                present.append(blob.sha256)
                continue
            if blob.size <= IN_MEMORY:
                await small.add(blob, await reader.exact(blob.size))
            else:
                await _store_streamed(reader, state.store, blob, ctx.user.name)
            stored.append(blob.sha256)
        if not await reader.at_end():
            raise BadRequest("The body holds more bytes than the blobs it announced")
    except ClientDisconnect:
        await small.flush()  # the whole, verified blobs before the break are worth keeping
        raise BadRequest(f"Connection closed after {len(stored) + len(present)} blobs") from None
    except BadRequest:
        await small.flush()
        raise
    await small.flush()
    return BatchStored(stored=stored, present=present)


class SmallBlobs:
    """Verified small blobs, stored a few MiB at a time, all of a group at once.

    Each blob is written to a temporary file, fsynced and renamed into place.
    Doing those on parallel threads lets the filesystem commit the fsyncs of
    a group together (one journal commit instead of one per notebook), which
    is most of a submission's time on a busy disk.
    """

    def __init__(self, store: BlobStore, limit: int = 4 * IN_MEMORY) -> None:
        self.store = store
        self.limit = limit
        self.pending: list[tuple[bytes, Digest]] = []
        self.size = 0

    async def add(self, blob: BatchBlob, data: bytes) -> None:
        digest = hash_bytes(data)
        if digest.sha256 != blob.sha256:
            raise _mismatch(blob.sha256, digest.sha256)
        self.pending.append((data, digest))
        self.size += len(data)
        if self.size >= self.limit:
            await self.flush()

    async def flush(self) -> None:
        pending, self.pending, self.size = self.pending, [], 0
        if len(pending) == 1:
            await anyio.to_thread.run_sync(self.store.put_bytes, *pending[0])
            return
        async with anyio.create_task_group() as group:
            for data, digest in pending:
                group.start_soon(anyio.to_thread.run_sync, self.store.put_bytes, data, digest)


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
        f"The bytes of blob {expected} hash to {actual}; nothing after it was stored",
        reason="hash_mismatch",
    )


@router.post(
    "/courses/{course}/blobs/batch",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def download_batch(body: HashList, ctx: CourseMember, state: State) -> StreamingResponse:
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
    return StreamingResponse(
        _concatenated(state.store, hashes), headers=headers, media_type="application/octet-stream"
    )


async def _concatenated(store: BlobStore, hashes: list[str]) -> AsyncIterator[bytes | memoryview]:
    """Blob after blob, small ones gathered so each piece sent is about SEND_CHUNK bytes."""
    pending = bytearray()
    for sha256 in hashes:
        async for chunk in blob_pieces(store, sha256):
            if not pending and len(chunk) >= SEND_CHUNK:
                yield chunk  # a whole chunk of a large blob: no copy
                continue
            pending += chunk
            if len(pending) >= SEND_CHUNK:
                yield bytes(pending)
                pending.clear()
    if pending:
        yield bytes(pending)
