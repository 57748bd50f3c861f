"""v2 blobs: which are missing, streamed and resumable uploads, ranged downloads.

An upload names the blob by its sha256 and states its total `size`; the body
is a raw byte stream (a whole file, or the next piece from `offset`). The
server hashes while it writes and refuses a mismatch. A dropped connection
keeps what arrived: ask `GET .../upload` for the offset and continue there.
"""

from __future__ import annotations

import errno
import re
from collections import deque

import anyio
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.requests import ClientDisconnect

from ngshare.api.v2.deps import CourseMember, State
from ngshare.api.v2.schemas import BlobStored, HashList, Missing, UploadState
from ngshare.api.v2.transfer import blob_response
from ngshare.budget import MemoryBudget
from ngshare.config import Limits
from ngshare.domain.access import may_read_blob
from ngshare.errors import BadRequest, Conflict, NotFound, TooLarge
from ngshare.storage import BlobStore, HashMismatch, Upload, UploadBusy

router = APIRouter(tags=["v2: blobs"])

SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
WRITE_BATCH = 1024 * 1024  # per upload in flight: bounds memory at the deadline peak
# Files this large come a few at a time: bigger batches mean fewer thread hand-offs
# (a 2 GiB upload by curl: about 1000 MB/s against 820 with 1 MiB batches)
LARGE_FILE, LARGE_BATCH = 64 * 1024 * 1024, 4 * 1024 * 1024


def check_sha256(value: str) -> str:
    if not SHA256_RE.match(value):
        raise BadRequest(f"Not a sha256 hex digest: {value[:80]!r}")
    return value


def check_file_count(limits: Limits, count: int, per: str = "upload") -> None:
    if count > limits.files_per_upload:
        raise TooLarge(f"Too many files: the limit is {limits.files_per_upload} per {per}")


@router.post("/courses/{course}/blobs/missing", response_model=Missing)
def missing_blobs(body: HashList, ctx: CourseMember, state: State) -> Missing:
    """The digests of `sha256` that the server lacks; present ones are kept from the GC."""
    check_file_count(state.limits, len(body.sha256))
    wanted = [check_sha256(value) for value in dict.fromkeys(body.sha256)]
    return Missing(missing=[sha for sha in wanted if not state.store.touch(sha)])


@router.get("/courses/{course}/blobs/{sha256}/upload", response_model=UploadState)
def upload_state(sha256: str, ctx: CourseMember, state: State) -> UploadState:
    check_sha256(sha256)
    if state.store.exists(sha256):
        return UploadState(sha256=sha256, offset=state.store.size(sha256) or 0, complete=True)
    offset = state.store.upload_offset(sha256, ctx.user.name)
    return UploadState(sha256=sha256, offset=offset, complete=False)


@router.put(
    "/courses/{course}/blobs/{sha256}",
    status_code=201,
    response_model=BlobStored,
    responses={202: {"model": UploadState, "description": "Partial upload kept; continue"}},
)
async def upload_blob(
    sha256: str,
    request: Request,
    ctx: CourseMember,
    state: State,
    size: int = Query(ge=0, description="Total size of the blob in bytes"),
    offset: int = Query(0, ge=0, description="Where this body starts (for resuming)"),
) -> Response:
    """Receive a blob's bytes (or the next piece of them) as the raw request body."""
    check_sha256(sha256)
    if size > state.limits.file_bytes:
        mib = state.limits.file_bytes // 2**20
        raise TooLarge(f"The file exceeds the largest file limit of {mib} MiB")
    if await anyio.to_thread.run_sync(state.store.touch, sha256):
        return JSONResponse(BlobStored(sha256=sha256, size=size).model_dump(), status_code=200)
    upload = await begin_upload(state.store, sha256, ctx.user.name, size)
    if upload.offset != offset:
        held = upload.offset
        await anyio.to_thread.run_sync(upload.suspend)
        raise Conflict(
            f"The server holds {held} bytes of this upload; continue with offset={held}",
            reason="offset_mismatch",
            extra={"offset": held},
        )
    try:
        await _receive(request, upload, size, state.memory)
    except OSError as exc:
        # a full disk keeps nothing (the partial would only hold space); other errors keep it
        keep = exc.errno not in (errno.ENOSPC, errno.EDQUOT)
        await anyio.to_thread.run_sync(upload.suspend if keep else upload.abort)
        raise
    except BaseException:
        await anyio.to_thread.run_sync(upload.suspend)
        raise
    if upload.offset < size:
        await anyio.to_thread.run_sync(upload.suspend)
        body = UploadState(sha256=sha256, offset=upload.offset, complete=False)
        return JSONResponse(body.model_dump(), status_code=202)
    try:
        digest = await anyio.to_thread.run_sync(upload.finish)
    except HashMismatch as exc:
        raise BadRequest(
            f"The bytes received hash to {exc.actual}, not {exc.expected}", reason="hash_mismatch"
        ) from None
    return JSONResponse(BlobStored(sha256=sha256, size=digest.size).model_dump(), status_code=201)


async def begin_upload(store: BlobStore, sha256: str, uploader: str, size: int) -> Upload:
    """Start or continue the uploader's upload of a blob; 409 while another request has it."""
    try:
        return await anyio.to_thread.run_sync(store.begin_upload, sha256, uploader, size)
    except UploadBusy:
        raise Conflict(
            "This file is being uploaded by another request of yours; wait for it",
            reason="upload_busy",
        ) from None


async def _receive(request: Request, upload: Upload, size: int, memory: MemoryBudget) -> None:
    """Append the body to `upload`, writing one batch while the next arrives.

    A writer task takes batches from a queue of one, so reading from the
    network overlaps writing and hashing. Each batch's bytes are lent by the
    server's memory budget before the batch is filled, and repaid as soon as
    the writer has written it (`BatchLoans`): 500 students sending 10 MB
    files at once wait their turn for the budget, instead of holding 4 MiB
    each.
    """
    queue_in, queue_out = anyio.create_memory_object_stream[list[bytes]](1)
    outcome = {"received": upload.offset, "too_long": False, "disconnected": False}
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
        async with anyio.create_task_group() as group:
            group.start_soon(writer)
            async with queue_in:
                await _read_batches(request, queue_in, size, outcome, loans)
    except BaseExceptionGroup as failed:  # the writer failed (disk full, ...): its error
        raise failed.exceptions[0] from None
    finally:
        loans.repay_all()
    if outcome["too_long"]:
        await anyio.to_thread.run_sync(upload.abort)
        raise BadRequest(f"The body is longer than the declared size of {size} bytes")
    if outcome["disconnected"]:
        await anyio.to_thread.run_sync(upload.suspend)
        raise BadRequest(
            f"Connection closed at byte {upload.offset}; resume with offset={upload.offset}"
        )


class BatchLoans:
    """The memory budget's bytes behind an upload's batches, one loan per batch, in order.

    A loan is taken before a batch is filled, and repaid when
    `upload.write_pieces` returns for it. Repayment depends only on the disk, never on the budget,
    so once a reader waits for its next loan, the writer soon repays all the
    upload holds: readers waiting for the budget cannot deadlock one another.
    A large upload still hashes its last batch for a few milliseconds after
    the write returns; that batch is counted no longer, an undercount of one
    batch per large upload at most, and only that briefly.
    """

    def __init__(self, memory: MemoryBudget) -> None:
        self.memory = memory
        self.loans: deque[int] = deque()

    async def borrow(self, size: int) -> None:
        self.loans.append(await self.memory.acquire(size))

    def repay_one(self) -> None:
        if self.loans:
            self.memory.release(self.loans.popleft())

    def repay_all(self) -> None:
        while self.loans:
            self.repay_one()


async def _read_batches(
    request: Request, queue, size: int, outcome: dict, loans: BatchLoans
) -> None:
    """Gather the body's reads into batches of `batch_size` bytes or a little more for
    the writer, each borrowed before its first read: an upload waiting for the budget
    holds none of its body (it stays in uvicorn's 64 KiB buffer and the kernel's).

    A batch is the list of reads itself, written piece by piece in one worker
    thread call (`Upload.write_pieces`). Copying them into one buffer first,
    as a ring of four buffers reused for the whole upload did before, cost a
    copy of every byte; and a ring lives as long as its upload, loaned or
    not, so 500 uploads waiting for the budget held 4 MiB each.
    """
    largest = LARGE_BATCH if size >= LARGE_FILE else WRITE_BATCH
    batch_size = max(1, min(largest, size - outcome["received"]))
    chunks: list[bytes] = []
    pending, lent = 0, False
    body = request.stream()
    try:
        while True:
            if not lent:
                await loans.borrow(batch_size)
                lent = True
            chunk = await anext(body, None)
            if chunk is None:
                break
            outcome["received"] += len(chunk)
            if outcome["received"] > size:
                outcome["too_long"] = True
                return
            if chunk:
                chunks.append(chunk)
                pending += len(chunk)
            del chunk  # nor the last read while the next loan is awaited
            if pending >= batch_size:
                await queue.send(chunks)
                chunks, pending, lent = [], 0, False
    except ClientDisconnect:
        outcome["disconnected"] = True
    finally:
        await body.aclose()
    if chunks:
        await queue.send(chunks)


@router.get("/courses/{course}/blobs/{sha256}", response_class=Response)
def download_blob(sha256: str, request: Request, ctx: CourseMember, state: State) -> Response:
    """A blob's bytes, if some tree of the course that the caller may read contains it."""
    check_sha256(sha256)
    with state.db.read() as session:
        allowed = may_read_blob(session, ctx, sha256)
    size = state.store.size(sha256) if allowed else None
    if size is None:
        raise NotFound("File not found")
    return blob_response(request, state.store, sha256, size, state.memory)
