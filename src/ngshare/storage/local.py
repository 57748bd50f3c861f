"""Blob store in a local directory.

Layout: `<root>/ab/cd/abcd...` (sha256 hex, two levels of fan-out) and
`<root>/tmp/` for uploads in progress, on the same filesystem so the final
rename is atomic. A blob is written to a temporary name, fsynced, renamed into
place and its directory fsynced: a crash leaves either the whole blob or a
temporary file that the garbage collector removes, never a torn blob.
Storing a blob that already exists only refreshes its time, which tells the
garbage collector that an upload in flight still needs it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from ngshare.checksums import new_xxh3
from ngshare.storage.base import CHUNK, Digest, Hashes, HashMismatch, UploadBusy
from ngshare.storage.direct import DIRECT_MIN, DirectAppender, open_direct

SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


class LocalBlobStore:
    """Blobs under `root`; uploads of `direct_min` bytes or more skip the page cache (0: never)."""

    def __init__(self, root: Path, direct_min: int = DIRECT_MIN) -> None:
        self.root = Path(root)
        self._root = os.fspath(self.root)
        self.tmp = self.root / "tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.direct_min = direct_min

    def path_for(self, sha256: str) -> Path:
        return Path(self._name(sha256))

    def _name(self, sha256: str) -> str:
        """The blob's file as a string, for the twenty-odd questions a submit asks
        about its blobs (touch, size, exists): three Paths built per question cost
        more than its syscall under a profiler, though no benchmark here could tell
        the difference through the noise (docs/benchmarks.md)."""
        if not SHA256_RE.match(sha256):
            raise ValueError("not a sha256 hex digest")
        return f"{self._root}/{sha256[:2]}/{sha256[2:4]}/{sha256}"

    def put_bytes(self, data: bytes, digest: Digest) -> None:
        if self.touch(digest.sha256):
            return
        final = self.path_for(digest.sha256)
        fd, tmp_name = tempfile.mkstemp(dir=self.tmp, prefix="up-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            self._commit(Path(tmp_name), final)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise

    def _commit(self, tmp: Path, final: Path) -> None:
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, final)
        _fsync_dir(final.parent)

    @staticmethod
    def _touch(path: str | Path) -> bool:
        try:
            os.utime(path)
            return True
        except FileNotFoundError:
            return False

    def exists(self, sha256: str) -> bool:
        return os.path.isfile(self._name(sha256))

    def size(self, sha256: str) -> int | None:
        try:
            return os.stat(self._name(sha256)).st_size
        except FileNotFoundError:
            return None

    def touch(self, sha256: str) -> bool:
        return self._touch(self._name(sha256))

    def _partial_path(self, sha256: str, key: str) -> Path:
        self.path_for(sha256)  # validates the name
        tag = hashlib.sha256(key.encode()).hexdigest()[:16]
        return self.tmp / f"partial-{sha256}-{tag}"

    def stage(self, md5: bool = True) -> LocalStaging:
        return LocalStaging(self, md5)

    def begin_upload(self, sha256: str, key: str, size: int | None = None) -> LocalUpload:
        direct = size is not None and 0 < self.direct_min <= size
        return LocalUpload(self, sha256, self._partial_path(sha256, key), direct)

    def upload_offset(self, sha256: str, key: str) -> int:
        try:
            return self._partial_path(sha256, key).stat().st_size
        except FileNotFoundError:
            return 0

    def open(self, sha256: str) -> BinaryIO:
        return self.path_for(sha256).open("rb")

    def local_file(self, sha256: str) -> Path:
        return self.path_for(sha256)

    def iter_chunks(self, sha256: str, chunk_size: int = CHUNK) -> Iterator[bytes]:
        with self.open(sha256) as handle:
            while chunk := handle.read(chunk_size):
                yield chunk

    def delete(self, sha256: str) -> None:
        self.path_for(sha256).unlink(missing_ok=True)

    def list_blobs(self) -> Iterator[tuple[str, datetime]]:
        for first in sorted(self.root.glob("[0-9a-f][0-9a-f]")):
            for path in sorted(first.glob("*/*")):
                if SHA256_RE.match(path.name):
                    yield path.name, datetime.fromtimestamp(path.stat().st_mtime, UTC)

    def written_at(self, sha256: str) -> datetime | None:
        """When the blob was last written or touched; None when it is not stored."""
        try:
            return datetime.fromtimestamp(self.path_for(sha256).stat().st_mtime, UTC)
        except FileNotFoundError:
            return None

    def list_temporary(self) -> Iterator[tuple[Path, datetime]]:
        for path in self.tmp.iterdir():
            yield path, datetime.fromtimestamp(path.stat().st_mtime, UTC)

    def check(self) -> None:
        fd, name = tempfile.mkstemp(dir=self.tmp, prefix="ready-")
        os.close(fd)
        os.unlink(name)


class LocalStaging:
    """A temporary file in `tmp/`, hashed as written, renamed into place on commit.

    It is fsynced only when its blob turns out to be new: a resubmission's
    unchanged 20 MB dataset is hashed, found stored, and dropped from the page
    cache without ever being forced to disk.
    """

    def __init__(self, store: LocalBlobStore, md5: bool = True) -> None:
        self.store = store
        fd, name = tempfile.mkstemp(dir=store.tmp, prefix="stage-")
        self.path = Path(name)
        self.handle = os.fdopen(fd, "wb")
        self.hashes = Hashes(md5)
        self.result: Digest | None = None

    def write(self, data: bytes) -> None:
        self.handle.write(data)
        self.hashes.update(data)

    def finish(self) -> Digest:
        if self.result is None:
            self.handle.close()
            self.result = self.hashes.digest()
        return self.result

    def commit(self) -> None:
        digest = self.finish()
        final = self.store.path_for(digest.sha256)
        if self.store._touch(final):
            self.path.unlink(missing_ok=True)
            return
        fd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(fd)  # flushes the file's pages, whichever descriptor wrote them
        finally:
            os.close(fd)
        self.store._commit(self.path, final)

    def discard(self) -> None:
        _close_quietly(self.handle)  # a full disk makes even close() fail
        self.path.unlink(missing_ok=True)


class LocalUpload:
    """An upload appended to `tmp/partial-<sha256>-<uploader>`, renamed into place when whole.

    The sha256 is computed while the bytes arrive; an upload resumed in a later
    request re-reads what it already holds once, at the start. `direct`: a
    large upload, appended with O_DIRECT where the filesystem allows it.
    """

    def __init__(
        self, store: LocalBlobStore, sha256: str, partial: Path, direct: bool = False
    ) -> None:
        self.store = store
        self.sha256 = sha256
        self.partial = partial
        self.handle = partial.open("ab")
        try:
            fcntl.flock(self.handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.handle.close()
            raise UploadBusy(sha256) from None
        self.offset = self.handle.tell()
        self.hasher = hashlib.sha256()
        self.quick = new_xxh3()  # computed beside the sha256 it vouches for (ngshare.checksums)
        if self.offset:
            with partial.open("rb") as existing:
                while chunk := existing.read(CHUNK):
                    self.hasher.update(chunk)
                    self.quick.update(chunk)
        self.appender: DirectAppender | None = None
        self._hashing: ThreadPoolExecutor | None = None
        self._hashed: Future | None = None
        if direct:
            self.appender = open_direct(partial, self.handle.fileno(), self.offset)

    def write(self, data: bytes) -> None:
        self.write_pieces((data,))

    def write_pieces(self, pieces: Sequence[bytes]) -> None:
        """Append `pieces` in order. A direct (large) upload hashes them on a thread of
        its own and returns before that is done: the caller keeps them unchanged
        until the next write returns, or `finish`, `suspend` or `abort` is called."""
        if self.appender is None:
            for piece in pieces:
                self.handle.write(piece)
                self.hasher.update(piece)
                self.quick.update(piece)
        else:
            self._hash_behind(pieces)
        self.offset += sum(map(len, pieces))

    def _hash_behind(self, pieces: Sequence[bytes]) -> None:
        """Write `pieces` while their hash is computed; wait only for the previous batch's hash.

        Waiting for this batch's own hash before returning left the hashing
        thread idle while the next batch was handed over from the event loop
        (up to a GIL switch interval each time): sha256 is the slowest stage
        of a large upload (376 MB/s on a CPU without SHA extensions), so it
        must never wait.
        """
        assert self.appender is not None
        if self._hashing is None:
            self._hashing = ThreadPoolExecutor(1, thread_name_prefix="ngshare-hash")
        previous = self._hashed
        self._hashed = self._hashing.submit(_update_all, self.hasher, pieces)
        try:
            for (
                piece
            ) in pieces:  # xxh3 here, at 7x sha256's speed: the hashing thread sets the pace
                self.quick.update(piece)
                self.appender.write(piece)
        finally:
            if previous is not None:
                previous.result()

    def _hashes_done(self) -> None:
        """Wait for the last batch's hash and stop the hashing thread."""
        if self._hashing is not None:
            self._hashing.shutdown(wait=True)
            self._hashing = None
        if self._hashed is not None:
            hashed, self._hashed = self._hashed, None
            hashed.result()

    def _close_appender(self, keep: bool = True) -> None:
        if self.appender is not None:
            self.appender.close(keep)

    def finish(self) -> Digest:
        self._hashes_done()
        actual = self.hasher.hexdigest()
        if actual != self.sha256:
            self.abort()
            raise HashMismatch(self.sha256, actual)
        self._close_appender()
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()
        self.store._commit(self.partial, self.store.path_for(self.sha256))
        return Digest(sha256=actual, md5="", size=self.offset, xxh3=self.quick.hexdigest())

    def suspend(self) -> None:
        self._hashes_done()
        if not self.handle.closed:
            self._close_appender()
            self.handle.flush()
            self.handle.close()

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self._hashes_done()
        with contextlib.suppress(OSError):
            self._close_appender(keep=False)
        _close_quietly(self.handle)
        self.partial.unlink(missing_ok=True)


def _close_quietly(handle) -> None:
    with contextlib.suppress(OSError):
        handle.close()


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _update_all(hasher: Any, pieces: Sequence[bytes]) -> None:
    for piece in pieces:
        hasher.update(piece)
