"""The blob store interface.

A blob is an immutable byte string named by the sha256 of its bytes. Stores
only ever add a blob whole (never a partial one under its final name) and
remove blobs the garbage collector found unreferenced. Identical content is
stored once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO, Protocol

CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Digest:
    """Hashes and size of one byte string, computed once while it is read."""

    sha256: str
    md5: str
    size: int


def hash_bytes(data: bytes) -> Digest:
    return Digest(hashlib.sha256(data).hexdigest(), hashlib.md5(data).hexdigest(), len(data))


class BlobStore(Protocol):
    """What the server needs from a place that keeps bytes."""

    def put_bytes(self, data: bytes, digest: Digest) -> None:
        """Store `data`, whose digest the caller computed; durable when this returns."""

    def exists(self, sha256: str) -> bool: ...

    def open(self, sha256: str) -> BinaryIO:
        """A readable binary file of the blob; FileNotFoundError when missing."""

    def iter_chunks(self, sha256: str, chunk_size: int = CHUNK) -> Iterator[bytes]: ...

    def delete(self, sha256: str) -> None:
        """Remove a blob; no error when it is already gone."""

    def list_blobs(self) -> Iterator[tuple[str, datetime]]:
        """Every stored blob with its last-written time (for garbage collection)."""

    def check(self) -> None:
        """Raise OSError when the store cannot be written (readiness check)."""
