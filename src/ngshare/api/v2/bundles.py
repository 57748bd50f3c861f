"""Manifest bodies: a JSON manifest, or a bundle of the manifest and its small blobs.

Committing a tree (a submission, a feedback set) takes a manifest once every
blob it names is stored. Sending the small blobs first in a batch and then the
manifest costs a request more than the bytes need; at a deadline, with every
student submitting, the request count sets the latency. So the commit routes
also take a *bundle* (`Content-Type: application/vnd.ngshare.bundle`): one line
of JSON, `{"files": [<manifest entries>], "blobs": [{"sha256": ..., "size": ...}]}`,
then the bytes of `blobs` back to back, framed as in a blob batch
(`ngshare.api.v2.batches`). The blobs are verified and stored as they arrive,
then the manifest is committed as if it had come alone. A blob the manifest
names but neither the bundle nor the store holds gives the usual 409
`blobs_missing`, so a client can bundle the small changed files and name the
large ones by hash.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import anyio
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect

from ngshare.api.v2.batches import (
    BatchBlob,
    BodyReader,
    body_bytes,
    check_blobs,
    first_line_json,
    line_as,
    receive_blobs,
)
from ngshare.api.v2.schemas import Manifest, ManifestFile
from ngshare.config import Limits
from ngshare.domain.manifests import check_shape, check_totals
from ngshare.errors import BadRequest, NgshareError, TooLarge, about
from ngshare.state import AppState
from ngshare.storage import BlobStore

BUNDLE_MEDIA_TYPE = "application/vnd.ngshare.bundle"
# A refused bundle is read to its end before the answer (so the client, still
# sending, gets the answer rather than a reset connection), up to this many bytes.
DRAIN_LIMIT = 64 * 1024 * 1024
# A manifest (a JSON body, or a bundle's first line): ~150 bytes per file, and up
# to --max-files-per-upload files (10 000 by default).
MANIFEST_LIMIT = 16 * 1024 * 1024

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


def commit_body_doc(model: type[BaseModel]) -> dict:
    """`openapi_extra` of a commit route: JSON `model`, or a bundle (see above); the
    app lists `model` among the document's schemas (`api.docs.add_component_schemas`)."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}},
                BUNDLE_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}},
            },
        }
    }


MANIFEST_BODY = commit_body_doc(Manifest)


class BundleBlobs(BaseModel):
    """The part of a bundle's first line that every commit route shares."""

    blobs: list[BatchBlob] = []


@dataclass
class CommitBody(Generic[M]):
    """The parsed head of a commit request, and for a bundle the blobs still to be read.

    `files` lists every file the head names, across all its trees (a bulk
    feedback request names many).
    """

    head: M
    files: list[ManifestFile]
    reader: BodyReader | None = None
    blobs: tuple[BatchBlob, ...] = ()

    async def store_blobs(self, store: BlobStore, user: str) -> None:
        """Store the bundle's blobs (nothing to do for a JSON manifest)."""
        if self.reader is not None:
            await receive_blobs(self.reader, list(self.blobs), store, user)

    async def precheck(self, check: Callable[..., T], *args: object) -> T:
        """`check(*args)` on a worker thread, before any blob is stored.

        A refusal reads the rest of a bundle first, so the client hears it.
        """
        try:
            return await anyio.to_thread.run_sync(check, *args)
        except NgshareError:
            await self.discard()
            raise

    async def discard(self) -> None:
        """Read a refused bundle's remaining bytes, if there are not too many."""
        if self.reader is not None:
            await self.reader.drain(DRAIN_LIMIT)


Trees = list[tuple[str, list[ManifestFile]]]  # each tree's files, after a label for errors


def manifest_trees(manifest: Manifest) -> Trees:
    return [("", manifest.files)]


async def checked_manifest(
    request: Request,
    state: AppState,
    user: str,
    check: Callable[..., object],
    *args: object,
) -> list[ManifestFile]:
    """The request's manifest, once `check(*args)` has passed and a bundle's blobs are
    stored: what a commit route needs before it commits (a submission, which may
    answer with a replay instead, uses the steps itself)."""

    def check_alone(*given: object) -> object:  # checked_commit adds the parsed head
        return check(*given[:-1])

    body = await checked_commit(request, state, user, Manifest, manifest_trees, check_alone, *args)
    return body.files


async def checked_commit(
    request: Request,
    state: AppState,
    user: str,
    model: type[M],
    trees: Callable[[M], Trees],
    check: Callable[..., object],
    *args: object,
) -> CommitBody[M]:
    """The request's head (parsed as `model`, its trees found by `trees`), once
    `check(*args, head)` has passed and a bundle's blobs are stored."""
    async with state.memory.hold(body_bytes(request)):
        body = await commit_body(request, state.limits, model, trees)
        await body.precheck(check, *args, body.head)
        await body.store_blobs(state.store, user)
        return body


async def manifest_body(request: Request, limits: Limits) -> CommitBody[Manifest]:
    """Read the manifest (the whole JSON body, or a bundle's first line)."""
    return await commit_body(request, limits, Manifest, manifest_trees)


async def commit_body(
    request: Request,
    limits: Limits,
    model: type[M],
    trees: Callable[[M], Trees],
) -> CommitBody[M]:
    """Read the head (the whole JSON body, or a bundle's first line) as `model`;
    each of its `trees` must be well formed and within the limits.

    A refusal reads the rest of the body first (up to DRAIN_LIMIT bytes).
    """
    reader = BodyReader(request.stream())
    try:
        if _media_type(request) != BUNDLE_MEDIA_TYPE:
            head = _parsed(model, await _whole(reader))  # its trees are checked at the commit
            return CommitBody(head, _every_file(trees(head), limits))
        return await _bundle(reader, limits, model, trees)
    except (NgshareError, RequestValidationError):
        await reader.drain(DRAIN_LIMIT)
        raise


def _parsed(model: type[M], body: bytes) -> M:
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise RequestValidationError(_located(exc)) from None


def _every_file(trees: Trees, limits: Limits) -> list[ManifestFile]:
    """Every file of `trees`; those of a bulk request share one upload's limits."""
    every = [f for _, files in trees for f in files]
    if len(trees) > 1:
        check_totals(every, limits)
    return every


async def _bundle(
    reader: BodyReader,
    limits: Limits,
    model: type[M],
    trees: Callable[[M], Trees],
) -> CommitBody[M]:
    line = await first_line_json(reader, MANIFEST_LIMIT, "bundle")
    head = line_as(model, line, "bundle")
    named_trees = trees(head)
    for label, tree in named_trees:
        with about(label):
            check_shape(tree, limits)  # before any byte is stored
    files = _every_file(named_trees, limits)
    blobs = check_blobs(line_as(BundleBlobs, line, "bundle").blobs, limits)
    named = {f.sha256: f.size for f in files}
    for blob in blobs:
        if named.get(blob.sha256) != blob.size:
            raise BadRequest(
                f"The bundle carries blob {blob.sha256}, which no file names with that size"
            )
    return CommitBody(head, files, reader, tuple(blobs))


async def _whole(reader: BodyReader) -> bytes:
    """A JSON manifest's bytes, refused past MANIFEST_LIMIT."""
    try:
        while await reader.more():
            if len(reader.buffer) > MANIFEST_LIMIT:
                raise TooLarge(f"A manifest is limited to {MANIFEST_LIMIT // 2**20} MiB")
    except ClientDisconnect:
        raise BadRequest("Connection closed before the manifest's end") from None
    return bytes(reader.buffer)


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def _located(exc: ValidationError) -> list[dict]:
    """Pydantic's errors as FastAPI reports a body's: each location starts at `body`."""
    return [{**error, "loc": ("body", *error["loc"])} for error in exc.errors()]
