"""Manifest answers that carry their small files: a small fetch in one request.

A student fetching an assignment of notebooks asked for the manifest, then
for the notebooks in a blob batch: two round trips, and the server's cost is
set more by requests than by bytes. A client that names
`application/vnd.ngshare.bundle` in `Accept` on a manifest GET (an
assignment's release, a submission's feedback) gets the answer as a bundle,
framed as the commit bundles are (`ngshare.api.v2.bundles`): one line of
JSON, the usual answer plus `"blobs": [{"sha256": ..., "size": ...}]`, then
those blobs' bytes back to back, in that order.

The server carries each distinct file of at most INLINE_FILE bytes, in
manifest order, while the total stays within INLINE_TOTAL; the client fetches
the others as before. Without that `Accept` the answer is the JSON it always
was, so older clients see no change.
"""

from __future__ import annotations

import json

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from ngshare.api.v2.bundles import BUNDLE_MEDIA_TYPE
from ngshare.api.v2.schemas import ManifestFile
from ngshare.api.v2.transfer import ranges_response
from ngshare.state import AppState

INLINE_FILE = 1024 * 1024  # larger files: a batch or a request of their own (resumable)
INLINE_TOTAL = 4 * 1024 * 1024  # an answer held up by its files no longer than a batch piece

INLINE_DOC = {
    200: {
        "content": {
            BUNDLE_MEDIA_TYPE: {
                "schema": {"type": "string", "format": "binary"},
                "example": "(sent when Accept names it: the JSON answer with `blobs`, "
                "a newline, then those blobs' bytes)",
            }
        }
    }
}


def wants_bundle(request: Request) -> bool:
    """Whether `Accept` names the bundle type (with a q above 0); `*/*` does not count."""
    for media_range in request.headers.get("accept", "").split(","):
        kind, *params = (part.strip() for part in media_range.split(";"))
        if kind.lower() != BUNDLE_MEDIA_TYPE:
            continue
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    return float(value) > 0
                except ValueError:
                    return False
        return True
    return False


def inline_choice(files: list[ManifestFile]) -> list[ManifestFile]:
    """The files an answer carries: distinct small blobs, in order, within INLINE_TOTAL."""
    chosen: list[ManifestFile] = []
    seen: set[str] = set()
    total = 0
    for entry in files:
        if entry.size > INLINE_FILE or entry.sha256 in seen:
            continue
        if total + entry.size > INLINE_TOTAL:
            continue  # a smaller one further on may still fit
        seen.add(entry.sha256)
        chosen.append(entry)
        total += entry.size
    return chosen


def manifest_answer(  # called on a worker thread: it asks the store for sizes
    request: Request,
    response: Response,
    state: AppState,
    answer: BaseModel | dict,
    files: list[ManifestFile],
) -> BaseModel | Response:
    """`answer` as JSON, or as a bundle carrying its small `files` when the client asks.

    A dict `answer` is sent as it is (a listing with more fields than its model).
    """
    response.headers["Vary"] = "Accept"
    if not wants_bundle(request):
        if isinstance(answer, dict):
            return JSONResponse(answer, headers={"Vary": "Accept"})
        return answer
    # a blob gone from the store (lost, not collected: a manifest names it) is left to
    # the download that asks for it, which answers 404 naming it, not cut off mid-answer
    blobs = [f for f in inline_choice(files) if state.store.size(f.sha256) == f.size]
    head = answer if isinstance(answer, dict) else answer.model_dump(mode="json")
    head = {**head, "blobs": [{"sha256": f.sha256, "size": f.size} for f in blobs]}
    line = json.dumps(head, separators=(",", ":")).encode() + b"\n"
    headers = {"Content-Length": str(len(line) + sum(f.size for f in blobs)), "Vary": "Accept"}
    ranges = [(f.sha256, 0, f.size) for f in blobs]
    return ranges_response(
        request, state.store, state.memory, ranges, headers, media_type=BUNDLE_MEDIA_TYPE, head=line
    )
