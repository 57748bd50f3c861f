"""The blob store interface.

A blob is an immutable byte string named by the sha256 of its bytes. Stores
only ever add a blob whole (never a partial one under its final name) and
remove blobs the garbage collector found unreferenced. Identical content is
stored once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, Protocol

CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Digest:
    """Hashes and size of one byte string, computed once while it is read."""

    sha256: str
    md5: str
    size: int
    xxh3: str = ""  # xxh3-128, from a streamed upload: what downloads are checked with


class Hashes:
    """sha256 (and md5 unless told not to) of a stream, fed as it passes."""

    def __init__(self, md5: bool = True) -> None:
        self.sha256 = hashlib.sha256()
        self.md5 = hashlib.md5() if md5 else None
        self.size = 0

    def update(self, data: bytes) -> None:
        self.sha256.update(data)
        if self.md5 is not None:
            self.md5.update(data)
        self.size += len(data)

    def digest(self) -> Digest:
        md5 = self.md5.hexdigest() if self.md5 is not None else ""
        return Digest(self.sha256.hexdigest(), md5, self.size)


def hash_bytes(data: bytes) -> Digest:
    return Digest(hashlib.sha256(data).hexdigest(), hashlib.md5(data).hexdigest(), len(data))


class HashMismatch(Exception):
    """The bytes received do not hash to the name they were uploaded under."""

    def __init__(self, expected: str, actual: str) -> None:
        super().__init__(f"expected sha256 {expected}, received bytes hash to {actual}")
        self.expected = expected
        self.actual = actual


class UploadBusy(Exception):
    """Another request is uploading the same blob for the same uploader right now."""


class Upload(Protocol):
    """A blob being received, possibly across several requests (resumable).

    `offset` is how many bytes are already held. `write` appends; `finish`
    verifies the whole content against its sha256 and makes the blob durable
    under that name (HashMismatch otherwise, and the partial data is dropped);
    `suspend` keeps what arrived for a later request to continue.
    `write_pieces` appends several pieces in one call: a batch of the
    network's reads handed to a worker thread at once, without first copying
    them into one buffer. The bytes given to a write may still be read
    (hashed) until the next write returns or `finish`, `suspend` or `abort`
    is called, so the caller must not change them before.
    """

    offset: int

    def write(self, data: bytes) -> None: ...

    def write_pieces(self, pieces: Sequence[bytes]) -> None: ...

    def finish(self) -> Digest: ...

    def suspend(self) -> None: ...

    def abort(self) -> None: ...


class Staging(Protocol):
    """Bytes whose name (hash) is not known until they have all arrived (v1 uploads).

    `write` appends while sha256 (and md5, when the staging was asked for it)
    is computed; `finish` returns the digest (md5 "" when not computed);
    `commit` makes the blob durable under its name (an identical blob already
    stored is kept and touched instead); `discard` drops it.
    """

    def write(self, data: bytes) -> None: ...

    def finish(self) -> Digest: ...

    def commit(self) -> None: ...

    def discard(self) -> None: ...


class BlobStore(Protocol):
    """What the server needs from a place that keeps bytes."""

    def put_bytes(self, data: bytes, digest: Digest) -> None:
        """Store `data`, whose digest the caller computed; durable when this returns."""

    def exists(self, sha256: str) -> bool: ...

    def size(self, sha256: str) -> int | None:
        """The blob's size, or None when it is not stored."""

    def touch(self, sha256: str) -> bool:
        """Mark a blob as wanted now (the GC spares recent blobs); False when missing."""

    def stage(self, md5: bool = True) -> Staging:
        """Start receiving bytes of a blob whose hash is not known yet.

        `md5=False` skips the md5 (v1 uploads: most of a resubmission is bytes
        already stored, whose md5 is known; new blobs get it on first v1 read)."""

    def begin_upload(self, sha256: str, key: str, size: int | None = None) -> Upload:
        """Start or continue receiving blob `sha256` for uploader `key`.

        `size`, the blob's whole size when known, lets a store choose how to
        write (the local store writes large blobs past the page cache)."""

    def upload_offset(self, sha256: str, key: str) -> int:
        """Bytes held for an unfinished upload (0 when there is none)."""

    def open(self, sha256: str) -> BinaryIO:
        """A readable binary file of the blob; FileNotFoundError when missing."""

    def iter_chunks(self, sha256: str, chunk_size: int = CHUNK) -> Iterator[bytes]: ...

    def local_file(self, sha256: str) -> Path | None:
        """The blob's file on this machine when the store has one (downloads then read it
        straight from the page cache); None for remote stores."""

    def delete(self, sha256: str) -> None:
        """Remove a blob; no error when it is already gone."""

    def list_blobs(self) -> Iterator[tuple[str, datetime]]:
        """Every stored blob with its last-written time (for garbage collection)."""

    def written_at(self, sha256: str) -> datetime | None:
        """When the blob was last written or touched; None when it is not stored."""

    def list_temporary(self) -> Iterator[tuple[Any, datetime]]:
        """Unfinished uploads and temporary files with their last-written time."""

    def check(self) -> None:
        """Raise OSError when the store cannot be written (readiness check)."""
