"""Framing of blob batches (see ngshare.api.v2.batches): small files travel together.

Files up to `SMALL_FILE` bytes go in batches of at most `BATCH_BYTES` and
`BATCH_FILES`; larger files keep their own request, which can resume.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TypeVar

from ngshare.client.errors import ClientError
from ngshare.client.trees import CHUNK, LocalFile

SMALL_FILE = 8 * 1024 * 1024
BATCH_BYTES = 32 * 1024 * 1024
BATCH_FILES = 500
MEDIA_TYPE = "application/vnd.ngshare.blob-batch"
BUNDLE_MEDIA_TYPE = "application/vnd.ngshare.bundle"

T = TypeVar("T")


def group(items: Iterable[T], size_of: Callable[[T], int]) -> list[list[T]]:
    """Consecutive groups of at most BATCH_FILES items and (past the first) BATCH_BYTES bytes."""
    groups: list[list[T]] = []
    current: list[T] = []
    total = 0
    for item in items:
        size = size_of(item)
        if current and (total + size > BATCH_BYTES or len(current) >= BATCH_FILES):
            groups.append(current)
            current, total = [], 0
        current.append(item)
        total += size
    if current:
        groups.append(current)
    return groups


def upload_body(
    files: list[LocalFile], advance: Callable[[int], object], head: dict | None = None
) -> tuple[int, Iterator]:
    """The body's length and its bytes: a JSON line naming the blobs, then the blobs.

    With `head` (a manifest's `{"files": [...]}`, or bulk feedback's sets), the
    line also carries it: a bundle (ngshare.api.v2.bundles), which commits in
    the same request.
    """
    header: dict = {**(head or {}), "blobs": [{"sha256": f.sha256, "size": f.size} for f in files]}
    head = json.dumps(header).encode() + b"\n"

    def chunks() -> Iterator[bytes]:
        yield head
        for item in files:
            yield from _exactly(item, advance)

    return len(head) + sum(f.size for f in files), chunks()


def _exactly(item: LocalFile, advance: Callable[[int], object]) -> Iterator[bytes]:
    """The file's bytes, as many as were hashed; a file that changed size is an error."""
    left = item.size
    with Path(item.source).open("rb") as handle:
        while left:
            chunk = handle.read(min(CHUNK, left))
            if not chunk:
                raise ClientError(f"{item.path} changed while it was being uploaded")
            left -= len(chunk)
            advance(len(chunk))
            yield chunk


class Splitter:
    """Cuts a stream of concatenated blobs into pieces of known sizes."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks = chunks
        self.buffer = memoryview(b"")

    def pieces(self, size: int) -> Iterator[memoryview]:
        left = size
        while left:
            if not self.buffer:
                chunk = next(self.chunks, None)
                if chunk is None:
                    raise ClientError("The server's answer ended early")
                self.buffer = memoryview(chunk)
            piece = self.buffer[:left]
            self.buffer = self.buffer[len(piece) :]
            left -= len(piece)
            yield piece

    def at_end(self) -> bool:
        return not self.buffer and next(self.chunks, None) is None
