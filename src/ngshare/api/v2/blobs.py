"""v2 blobs: which are missing, streamed and resumable uploads, ranged downloads.

An upload names the blob by its sha256 and states its total `size`; the body
is a raw byte stream (a whole file, or the next piece from `offset`). The
server hashes while it writes and refuses a mismatch. A dropped connection
keeps what arrived: ask `GET .../upload` for the offset and continue there.
"""

from __future__ import annotations

import errno
import re

import anyio
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import bindparam, select

from ngshare.api.v2.deps import CourseMember, State
from ngshare.api.v2.receiving import receive_body
from ngshare.api.v2.schemas import BlobStored, HashList, Missing, UploadState
from ngshare.api.v2.transfer import blob_response
from ngshare.config import Limits
from ngshare.db.models import Blob
from ngshare.domain.access import may_read_blob
from ngshare.domain.filesets import remember_xxh3
from ngshare.errors import BadRequest, Conflict, NotFound, TooLarge
from ngshare.state import AppState
from ngshare.storage import BlobStore, Digest, HashMismatch, Upload, UploadBusy

router = APIRouter(tags=["v2: blobs"])

SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_XXH3 = select(Blob.xxh3).where(Blob.sha256 == bindparam("sha256"))  # built once: every download


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
        await receive_body(request, upload, size, state.memory, state.settings.body_timeout_seconds)
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
    if digest.xxh3:
        await anyio.to_thread.run_sync(_remember_xxh3, state, digest)
    return JSONResponse(BlobStored(sha256=sha256, size=digest.size).model_dump(), status_code=201)


def _remember_xxh3(state: AppState, digest: Digest) -> None:
    with state.db.write() as session:
        remember_xxh3(session, digest)


async def begin_upload(store: BlobStore, sha256: str, uploader: str, size: int) -> Upload:
    """Start or continue the uploader's upload of a blob; 409 while another request has it."""
    try:
        return await anyio.to_thread.run_sync(store.begin_upload, sha256, uploader, size)
    except UploadBusy:
        raise Conflict(
            "This file is being uploaded by another request of yours; wait for it",
            reason="upload_busy",
        ) from None


@router.head("/courses/{course}/blobs/{sha256}", response_class=Response)
@router.get("/courses/{course}/blobs/{sha256}", response_class=Response)
def download_blob(sha256: str, request: Request, ctx: CourseMember, state: State) -> Response:
    """A blob's bytes, if some tree of the course that the caller may read contains it.

    `Repr-Digest` names the whole blob: `sha-256`, and `xxh3-128` for a blob that
    arrived by a streamed upload (check that one: it is seven times cheaper).
    HEAD answers the same headers (size, ETag, digests, a range's extent) without
    reading the blob."""
    check_sha256(sha256)
    with state.db.read() as session:
        allowed = may_read_blob(session, ctx, sha256)
        xxh3 = session.scalar(_XXH3, {"sha256": sha256}) if allowed else None
    size = state.store.size(sha256) if allowed else None
    if size is None:
        raise NotFound("File not found")
    return blob_response(request, state.store, sha256, size, state.memory, xxh3)
