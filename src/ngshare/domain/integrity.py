"""`ngshare fsck`: does every file the database names exist in the blob store, intact?

It checks each referenced blob's presence and size, and (unless --quick)
re-hashes its bytes. Problems (missing, wrong size, corrupt) fail the check;
orphans (stored blobs nothing refers to, blob rows without files) are only
reported, since the garbage collector removes them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from sqlalchemy import select

from ngshare.db.engine import Database
from ngshare.db.models import Blob, FileEntry
from ngshare.storage import BlobStore


@dataclass
class FsckReport:
    referenced: int = 0
    missing: list[str] = field(default_factory=list)
    wrong_size: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)
    orphan_blobs: list[str] = field(default_factory=list)
    orphan_rows: list[str] = field(default_factory=list)
    temporary: int = 0

    @property
    def clean(self) -> bool:
        return not (self.missing or self.wrong_size or self.corrupt)

    def summary(self) -> str:
        state = "clean" if self.clean else "PROBLEMS FOUND"
        return (
            f"fsck {state}: {self.referenced} referenced blobs; {len(self.missing)} missing, "
            f"{len(self.wrong_size)} of the wrong size, {len(self.corrupt)} corrupt; "
            f"{len(self.orphan_blobs)} unreferenced blobs and {len(self.orphan_rows)} unused "
            f"blob rows for the GC; {self.temporary} temporary files"
        )


def fsck(db: Database, store: BlobStore, *, verify_hashes: bool = True) -> FsckReport:
    report = FsckReport()
    with db.read() as session:
        referenced = set(session.scalars(select(FileEntry.sha256).distinct()))
        sizes = dict(session.execute(select(Blob.sha256, Blob.size)).all())
    report.referenced = len(referenced)
    report.orphan_rows = sorted(set(sizes) - referenced)
    for sha256 in sorted(referenced):
        stored = store.size(sha256)
        if stored is None:
            report.missing.append(sha256)
        elif stored != sizes.get(sha256):
            report.wrong_size.append(sha256)
        elif verify_hashes and _hash(store, sha256) != sha256:
            report.corrupt.append(sha256)
    report.orphan_blobs = sorted(name for name, _ in store.list_blobs() if name not in referenced)
    report.temporary = sum(1 for _ in store.list_temporary())
    return report


def _hash(store: BlobStore, sha256: str) -> str:
    digest = hashlib.sha256()
    for chunk in store.iter_chunks(sha256):
        digest.update(chunk)
    return digest.hexdigest()
