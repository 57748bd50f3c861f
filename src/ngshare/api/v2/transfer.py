"""Streaming responses for v2: one blob with ETag and Range, stored ranges back to
back, or a whole archive."""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import iterate_in_threadpool

from ngshare import zerocopy
from ngshare.budget import MemoryBudget
from ngshare.checksums import repr_digest
from ngshare.domain.archives import FORMATS, Entry, stream_archive
from ngshare.errors import BadRequest, NgshareError
from ngshare.storage import BlobStore
from ngshare.storage.pieces import Range, concatenated

__all__ = ["archive_response", "blob_response", "ranges_response"]

RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")


def blob_response(
    request: Request,
    store: BlobStore,
    sha256: str,
    size: int,
    memory: MemoryBudget,
    xxh3: str | None = None,
) -> Response:
    """The blob's bytes; 304 for a matching If-None-Match, 206 for one byte range.

    `Repr-Digest` names the whole blob's sha256 and, when known, its xxh3-128,
    which clients check instead (`ngshare.checksums`)."""
    headers = {
        "ETag": f'"{sha256}"',
        "Repr-Digest": repr_digest(sha256, xxh3),
        "Accept-Ranges": "bytes",
        "Cache-Control": "private, max-age=31536000, immutable",
    }
    if sha256 in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    start, end = 0, size - 1
    status = 200
    requested = request.headers.get("range")
    if requested:
        start, end = _parse_range(requested, size)
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    headers["Content-Length"] = str(max(0, end - start + 1))
    if request.method == "HEAD":  # the headers alone: nothing read, nothing sent
        return Response(status_code=status, headers=headers, media_type="application/octet-stream")
    return ranges_response(
        request, store, memory, [(sha256, start, end + 1 - start)], headers, status=status
    )


def ranges_response(
    request: Request,
    store: BlobStore,
    memory: MemoryBudget,
    ranges: list[Range],
    headers: dict[str, str],
    *,
    status: int = 200,
    media_type: str = "application/octet-stream",
    head: bytes = b"",
) -> Response:
    """`head`, then stored byte ranges back to back: one blob's download, a batch, a
    manifest carrying its small files. Sent by sendfile where the connection is lent
    and the store keeps its blobs on this machine (the kernel sends the page cache's
    pages: no copies, no pieces); otherwise streamed in pieces the memory budget sizes."""
    parts = zerocopy.file_parts(request, store, ranges)
    if parts is not None:
        body = [head, *parts] if head else parts
        return zerocopy.SendfileResponse(request, body, status, headers, media_type)
    pieces = memory.streamed(concatenated(store, ranges, memory.piece, head))
    return StreamingResponse(pieces, status_code=status, headers=headers, media_type=media_type)


def _parse_range(value: str, size: int) -> tuple[int, int]:
    match = RANGE_RE.match(value.strip())
    if not match or match.groups() == ("", ""):
        raise BadRequest("Only one byte range of the form bytes=START-END is supported")
    first, last = match.groups()
    if first == "":
        start, end = max(0, size - int(last)), size - 1
    else:
        start = int(first)
        end = min(int(last), size - 1) if last else size - 1
    if start >= size or start > end:
        raise NgshareError(
            f"Range not satisfiable: the file has {size} bytes",
            status=416,
            reason="range_not_satisfiable",
        )
    return start, end


def archive_response(
    fmt: str, filename: str, entries: Iterable[Entry], store: BlobStore, memory: MemoryBudget
) -> StreamingResponse:
    if fmt not in FORMATS:
        raise BadRequest(f"Unknown archive format {fmt!r}: use tar or zip")
    disposition = f"attachment; filename*=UTF-8''{quote(filename)}.{fmt}"
    return StreamingResponse(
        memory.streamed(iterate_in_threadpool(stream_archive(fmt, entries, store))),
        media_type=FORMATS[fmt],
        headers={"Content-Disposition": disposition},
    )
