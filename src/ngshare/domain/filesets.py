"""File sets: turning uploaded trees into stored blobs and manifests, and back.

Order of work for an upload, so that a failure leaves nothing half-written:
1. decode and validate every file (paths, base64, limits) in memory; any error
   is a 400/413 before a single byte is stored;
2. store each blob (temp file, fsync, rename; existing blobs are only touched);
3. in one database transaction, insert missing blob rows, the file set and its
   entries, and the row that points at it (release, submission, feedback).
If step 3 fails, the blobs of step 2 have no row that references them, which
is exactly what the garbage collector looks for.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, replace

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from ngshare.config import Limits
from ngshare.db.engine import Database
from ngshare.db.models import Blob, FileEntry, FileSet
from ngshare.errors import BadRequest, TooLarge
from ngshare.paths import check_tree
from ngshare.storage import BlobStore, Digest, hash_bytes

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


def decode_v1_files(raw: str | None, limits: Limits) -> list[tuple[str, bytes]]:
    """Parse the v1 `files` field into (path, bytes) pairs, validating everything."""
    if raw is None:
        raise BadRequest("Please supply files")
    try:
        entries = json.loads(raw)
    except ValueError:
        raise BadRequest("Files cannot be JSON decoded") from None
    if not isinstance(entries, list) or not all(
        isinstance(e, dict) and isinstance(e.get("content"), str) for e in entries
    ):
        raise BadRequest("Incorrect request format")
    if len(entries) > limits.files_per_upload:
        raise TooLarge(f"Too many files: the limit is {limits.files_per_upload} per upload")
    paths = check_tree(e.get("path") for e in entries)
    decoded: list[tuple[str, bytes]] = []
    total = 0
    for path, entry in zip(paths, entries, strict=True):
        data = _b64decode(entry["content"])
        if len(data) > limits.file_bytes:
            raise TooLarge(f"File {path} exceeds the limit of {limits.file_bytes // 2**20} MiB")
        total += len(data)
        if total > limits.upload_bytes:
            raise TooLarge(f"Upload exceeds the limit of {limits.upload_bytes // 2**20} MiB")
        decoded.append((path, data))
    return decoded


def _b64decode(text: str) -> bytes:
    """Strict base64 that tolerates the line breaks `base64.encodebytes` inserts."""
    compact = "".join(text.split())
    try:
        return binascii.a2b_base64(compact.encode("ascii"), strict_mode=True)
    except (binascii.Error, UnicodeEncodeError):
        raise BadRequest("Content cannot be base64 decoded") from None


def store_files(store: BlobStore, files: list[tuple[str, bytes]]) -> list[StagedFile]:
    """Hash each file once and make its blob durable."""
    staged = []
    for path, data in files:
        digest = hash_bytes(data)
        store.put_bytes(data, digest)
        staged.append(StagedFile(path=path, digest=digest))
    return staged


def create_fileset(session: Session, kind: str, files: list[StagedFile]) -> FileSet:
    """Insert the blob rows that are missing, then the file set and its entries."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    unique = {f.digest.sha256: f.digest for f in files}
    if unique:
        rows = [{"sha256": d.sha256, "size": d.size, "md5": d.md5 or None} for d in unique.values()]
        session.execute(insert(Blob).on_conflict_do_nothing(index_elements=["sha256"]), rows)
    fileset = FileSet(
        kind=kind,
        digest=manifest_digest(files),
        file_count=len(files),
        total_size=sum(f.digest.size for f in files),
    )
    fileset.files = [
        FileEntry(path=f.path, sha256=f.digest.sha256, executable=f.executable) for f in files
    ]
    session.add(fileset)
    session.flush()
    return fileset


@dataclass(frozen=True)
class ListedFile:
    path: str
    sha256: str
    md5: str | None
    size: int
    executable: bool = False


def list_files(session: Session, fileset_id: int) -> list[ListedFile]:
    rows = session.execute(
        select(FileEntry.path, Blob.sha256, Blob.md5, Blob.size, FileEntry.executable)
        .join(Blob, Blob.sha256 == FileEntry.sha256)
        .where(FileEntry.fileset_id == fileset_id)
        .order_by(FileEntry.id)
    )
    return [ListedFile(*row) for row in rows]


def with_md5(db: Database, store: BlobStore, files: list[ListedFile]) -> list[ListedFile]:
    """Fill in md5 checksums that v1 needs and v2 uploads did not compute, and keep them."""
    missing = {f.sha256 for f in files if f.md5 is None}
    if not missing:
        return files
    computed = {sha: _md5_of(store, sha) for sha in missing}
    with db.write() as session:
        for sha, md5 in computed.items():
            session.execute(update(Blob).where(Blob.sha256 == sha).values(md5=md5))
    return [replace(f, md5=computed.get(f.sha256, f.md5)) for f in files]


def _md5_of(store: BlobStore, sha256: str) -> str:
    digest = hashlib.md5()
    for chunk in store.iter_chunks(sha256):
        digest.update(chunk)
    return digest.hexdigest()


def v1_tree_json(
    store: BlobStore, files: list[ListedFile], list_only: bool, extra: dict[str, str]
) -> Iterator[bytes]:
    """Stream `{"success": true, ..., "files": [...]}` without holding any file whole."""
    head = {"success": True, **extra}
    yield json.dumps(head)[:-1].encode() + b', "files": ['
    for index, item in enumerate(files):
        entry = json.dumps({"path": item.path, "checksum": item.md5})
        prefix = b", " if index else b""
        if list_only:
            yield prefix + entry.encode()
            continue
        yield prefix + entry[:-1].encode() + b', "content": "'
        with store.open(item.sha256) as handle:
            while chunk := handle.read(B64_CHUNK):
                yield base64.b64encode(chunk)
        yield b'"}'
    yield b"]}"
