"""File sets: turning uploaded trees into stored blobs and manifests, and back.

Order of work for an upload, so that a failure leaves nothing half-written:
1. decode and validate every file (paths, base64, limits) as it streams in,
   into temporary files (`ngshare.api.v1.wire`); any error is a 400/413 and
   the temporary files are dropped, so not a single blob is stored;
2. commit each blob (fsynced, renamed into place; existing blobs are only touched);
3. in one database transaction, insert missing blob rows, the file set and its
   entries, and the row that points at it (release, submission, feedback).
If step 3 fails, the blobs of step 2 have no row that references them, which
is exactly what the garbage collector looks for.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import AsyncIterator, Callable, Collection
from dataclasses import dataclass, replace

import pybase64
from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from ngshare.db.engine import Database
from ngshare.db.models import Blob, FileEntry, FileSet
from ngshare.domain import usage
from ngshare.storage import BlobStore, Digest, hash_bytes
from ngshare.storage.pieces import blob_pieces

B64_CHUNK = 3 * 256 * 1024  # a multiple of 3, so chunks encode independently


@dataclass(frozen=True)
class StagedFile:
    """A file whose bytes are durable in the blob store; md5 may be unknown (v2)."""

    path: str
    digest: Digest
    executable: bool = False


def manifest_digest(files: list[StagedFile]) -> str:
    """sha256 of the canonical manifest: equal trees have equal digests."""
    canonical = sorted([f.path, f.digest.sha256, f.executable] for f in files)
    return hashlib.sha256(json.dumps(canonical, separators=(",", ":")).encode()).hexdigest()


def commit_staged(entries: list) -> list[StagedFile]:
    """Make staged uploads durable blobs (after the request was found valid)."""
    for entry in entries:
        entry.staging.commit()
    return [StagedFile(entry.path, entry.digest) for entry in entries]


def store_files(store: BlobStore, files: list[tuple[str, bytes]]) -> list[StagedFile]:
    """Hash each file once and make its blob durable."""
    staged = []
    for path, data in files:
        digest = hash_bytes(data)
        store.put_bytes(data, digest)
        staged.append(StagedFile(path=path, digest=digest))
    return staged


@dataclass(frozen=True)
class NewFileSet:
    """The file set row `create_fileset` inserted: what the rows pointing at it need."""

    id: int
    digest: str
    file_count: int
    total_size: int


_INSERT_FILESET = insert(FileSet.__table__).returning(FileSet.__table__.c.id)
_INSERT_ENTRIES = insert(FileEntry.__table__)


def create_fileset(
    session: Session, course_id: int, kind: str, files: list[StagedFile]
) -> NewFileSet:
    """Insert the blob rows that are missing, then the file set and its entries, and
    count its bytes in the course's `stored_bytes`.

    Core statements, not ORM objects: this runs inside the write transaction
    of every submission, where SQLite takes one writer at a time, and the ORM's
    unit of work for a set and its entries cost more than the inserts
    themselves (a third of a v2 submit's commit under the GIL).
    """
    unique = {f.digest.sha256: f.digest for f in files}
    if unique:
        rows = [{"sha256": d.sha256, "size": d.size, "md5": d.md5 or None} for d in unique.values()]
        statement = _upsert(session).on_conflict_do_nothing(index_elements=["sha256"])
        session.execute(statement, rows)
    digest = manifest_digest(files)
    total_size = sum(f.digest.size for f in files)
    values = {"course_id": course_id, "kind": kind, "digest": digest,
              "file_count": len(files), "total_size": total_size}  # fmt: skip
    fileset_id = session.execute(_INSERT_FILESET, values).scalar_one()  # created_at: its default
    if files:
        entries = [
            {"fileset_id": fileset_id, "path": f.path, "sha256": f.digest.sha256,
             "executable": f.executable}
            for f in files
        ]  # fmt: skip
        session.execute(_INSERT_ENTRIES, entries)
    usage.count(session, course_id, total_size)
    return NewFileSet(fileset_id, digest, len(files), total_size)


def remember_xxh3(session: Session, digest: Digest) -> None:
    """Keep a streamed upload's xxh3 in its blob's row, made now if its commit is yet to come.

    Uploads and commits are separate requests, and only the upload saw the
    bytes. A row made here ahead of its commit is what `create_fileset`
    finds and keeps; one whose commit never comes goes with its blob, by the
    garbage collector.
    """
    values = {"sha256": digest.sha256, "size": digest.size, "xxh3": digest.xxh3}
    statement = _upsert(session).values(values)
    statement = statement.on_conflict_do_update(
        index_elements=["sha256"],
        set_={"xxh3": statement.excluded.xxh3},
        where=Blob.__table__.c.xxh3.is_(None),
    )
    session.execute(statement)


def _upsert(session: Session):
    """An INSERT into `blobs` that can say what to do on a conflict (PostgreSQL or SQLite)."""
    dialect = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    return dialect(Blob.__table__)


def drop_filesets(session: Session, ids: Collection[int]) -> None:
    """Delete file sets (their entries go with them) and take their bytes off their
    courses' `stored_bytes`; the blobs are left to the garbage collector.

    Every deletion of a file set goes through here, as every insertion goes
    through `create_fileset`, so the quota reads a count that is always exact.
    """
    if not ids:
        return
    table = FileSet.__table__
    per_course = session.execute(
        select(table.c.course_id, func.sum(table.c.total_size))
        .where(table.c.id.in_(ids), table.c.course_id.is_not(None))
        .group_by(table.c.course_id)
    ).all()
    session.execute(delete(table).where(table.c.id.in_(ids)))
    for course_id, size in per_course:
        usage.count(session, course_id, -int(size))


@dataclass(frozen=True)
class ListedFile:
    path: str
    sha256: str
    md5: str | None
    size: int
    executable: bool = False


_FILES = (
    select(FileEntry.path, Blob.sha256, Blob.md5, Blob.size, FileEntry.executable)
    .join(Blob, Blob.sha256 == FileEntry.sha256)
    .where(FileEntry.fileset_id == bindparam("fileset_id"))
    .order_by(FileEntry.id)
)  # built once: most requests list a file set


def list_files(session: Session, fileset_id: int) -> list[ListedFile]:
    rows = session.execute(_FILES, {"fileset_id": fileset_id})
    return [ListedFile(*row) for row in rows]


def with_md5(db: Database, store: BlobStore, files: list[ListedFile]) -> list[ListedFile]:
    """Fill in md5 checksums that v1 needs and uploads did not compute, and keep them.

    v2 uploads and v1 uploads (`stage(md5=False)`) leave md5 unset: most of
    what a class uploads is bytes already stored. The first v1 read of a blob
    computes it once; readers arriving meanwhile wait for that result.
    """
    missing = {f.sha256 for f in files if f.md5 is None}
    if not missing:
        return files
    computed = {sha: _MD5.of(store, sha) for sha in missing}
    with db.write() as session:
        for sha, md5 in computed.items():
            session.execute(update(Blob).where(Blob.sha256 == sha).values(md5=md5))
    return [replace(f, md5=computed.get(f.sha256, f.md5)) for f in files]


class _Md5Memo:
    """md5 by sha256, computed once per blob even when 32 fetches ask at the same moment.

    A blob's bytes never change, so a remembered md5 stays right; the memo is
    bounded, and the database keeps every result anyway.
    """

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self.known: dict[str, str] = {}
        self.busy: dict[str, threading.Lock] = {}
        self.lock = threading.Lock()

    def of(self, store: BlobStore, sha256: str) -> str:
        with self.lock:
            if sha256 in self.known:
                return self.known[sha256]
            blob_lock = self.busy.setdefault(sha256, threading.Lock())
        with blob_lock:
            with self.lock:
                if sha256 in self.known:
                    return self.known[sha256]
            try:
                md5 = _md5_of(store, sha256)
            finally:
                with self.lock:
                    self.busy.pop(sha256, None)
            with self.lock:
                if len(self.known) >= self.size:
                    self.known.pop(next(iter(self.known)))
                self.known[sha256] = md5
            return md5


_MD5 = _Md5Memo()


def _md5_of(store: BlobStore, sha256: str) -> str:
    digest = hashlib.md5()
    for chunk in store.iter_chunks(sha256):
        digest.update(chunk)
    return digest.hexdigest()


async def v1_tree_json(
    store: BlobStore,
    files: list[ListedFile],
    list_only: bool,
    extra: dict[str, str],
    piece: int | Callable[[], int] = B64_CHUNK,
) -> AsyncIterator[bytes]:
    """Stream `{"success": true, ..., "files": [...]}` without holding any file whole.

    Asynchronous, so the bytes come from the page cache on the event loop
    (`blob_pieces`) instead of a worker-thread round trip per megabyte; the
    encoding (pybase64, SIMD) takes a fraction of a millisecond per piece.
    """
    head = {"success": True, **extra}
    yield json.dumps(head)[:-1].encode() + b', "files": ['
    for index, item in enumerate(files):
        entry = json.dumps({"path": item.path, "checksum": item.md5})
        prefix = b", " if index else b""
        if list_only:
            yield prefix + entry.encode()
            continue
        yield prefix + entry[:-1].encode() + b', "content": "'
        carry = b""  # base64 encodes 3 bytes at a time; a short read may split a group
        async for chunk in blob_pieces(store, item.sha256, piece=piece):
            data = carry + chunk if carry else chunk
            usable = len(data) - len(data) % 3
            carry = bytes(data[usable:])
            if usable:
                yield pybase64.b64encode(data[:usable])
        if carry:
            yield pybase64.b64encode(carry)
        yield b'"}'
    yield b"]}"
