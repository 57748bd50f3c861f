"""`ngshare fsck`: does every file the database names exist in the blob store, intact?

It checks each referenced blob's presence and size, and (unless --quick)
re-hashes its bytes, and that each course's `stored_bytes` (what its quota
reads) is the sum of its file sets. Problems (missing, wrong size, corrupt, a
wrong count) fail the check; `recount` sets the counts right. Orphans (stored
blobs nothing refers to, blob rows without files) are only reported, since
the garbage collector removes them.

Re-hashing a blob also computes the xxh3-128 that downloads are checked with
(`ngshare.checksums`); a blob whose sha256 checks out and that has none yet
(stored before migration 0007, or not by a streamed upload) gets it kept,
so its later downloads cost their clients a seventh of the hashing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from sqlalchemy import bindparam, func, select, update

from ngshare.checksums import new_xxh3
from ngshare.db.engine import Database
from ngshare.db.models import Blob, Course, FileEntry, FileSet
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
    # "course: counted N, holds M" for each course whose stored_bytes is off
    miscounted: list[str] = field(default_factory=list)
    recounted: bool = False
    checksums_added: int = 0  # download checksums (xxh3-128) recorded for intact blobs

    @property
    def clean(self) -> bool:
        wrong_counts = self.miscounted and not self.recounted
        return not (self.missing or self.wrong_size or self.corrupt or wrong_counts)

    def summary(self) -> str:
        state = "clean" if self.clean else "PROBLEMS FOUND"
        return (
            f"fsck {state}: {self.referenced} referenced blobs; {len(self.missing)} missing, "
            f"{len(self.wrong_size)} of the wrong size, {len(self.corrupt)} corrupt; "
            f"{len(self.orphan_blobs)} unreferenced blobs and {len(self.orphan_rows)} unused "
            f"blob rows for the GC; {self.temporary} temporary files; "
            f"{len(self.miscounted)} course storage counts off"
            + (" (recounted)" if self.recounted and self.miscounted else "")
            + (f"; {self.checksums_added} download checksums added" if self.checksums_added else "")
        )


def fsck(
    db: Database, store: BlobStore, *, verify_hashes: bool = True, recount: bool = False
) -> FsckReport:
    report = FsckReport()
    report.miscounted, report.recounted = check_course_counts(db, recount=recount), recount
    with db.read() as session:
        referenced = set(session.scalars(select(FileEntry.sha256).distinct()))
        rows = session.execute(select(Blob.sha256, Blob.size, Blob.xxh3)).all()
    sizes = {sha256: size for sha256, size, _ in rows}
    unchecked = {sha256 for sha256, _, xxh3 in rows if xxh3 is None}
    report.referenced = len(referenced)
    report.orphan_rows = sorted(set(sizes) - referenced)
    found: dict[str, str] = {}
    for sha256 in sorted(referenced):
        stored = store.size(sha256)
        if stored is None:
            report.missing.append(sha256)
        elif stored != sizes.get(sha256):
            report.wrong_size.append(sha256)
        elif verify_hashes:
            actual, xxh3 = _hashes(store, sha256)
            if actual != sha256:
                report.corrupt.append(sha256)
            elif sha256 in unchecked:
                found[sha256] = xxh3
    report.checksums_added = _record_xxh3(db, found)
    report.orphan_blobs = sorted(name for name, _ in store.list_blobs() if name not in referenced)
    report.temporary = sum(1 for _ in store.list_temporary())
    return report


def _hashes(store: BlobStore, sha256: str) -> tuple[str, str]:
    """The blob's sha256 and xxh3-128, from one read of its bytes."""
    digest, quick = hashlib.sha256(), new_xxh3()
    for chunk in store.iter_chunks(sha256):
        digest.update(chunk)
        quick.update(chunk)
    return digest.hexdigest(), quick.hexdigest()


def _record_xxh3(db: Database, found: dict[str, str]) -> int:
    """Keep the xxh3 of blobs whose sha256 just checked out; how many rows took one."""
    if not found:
        return 0
    blobs = Blob.__table__
    statement = (
        update(blobs)
        .where(blobs.c.sha256 == bindparam("sha"), blobs.c.xxh3.is_(None))
        .values(xxh3=bindparam("xxh3"))
    )
    with db.write() as session:
        params = [{"sha": sha256, "xxh3": xxh3} for sha256, xxh3 in found.items()]
        session.connection().execute(statement, params)
    return len(found)


_HELD = (
    select(FileSet.course_id, func.coalesce(func.sum(FileSet.total_size), 0))
    .where(FileSet.course_id.is_not(None))
    .group_by(FileSet.course_id)
)


def check_course_counts(db: Database, *, recount: bool = False) -> list[str]:
    """Courses whose `stored_bytes` differs from the sum of their file sets (set right
    with `recount`, in the same transaction that found them).

    A recount locks the course rows before it sums (PostgreSQL; SQLite's write
    transaction excludes every other writer anyway): a commit running
    meanwhile adds its bytes at its end (`ngshare.domain.usage`), so it waits
    and adds them to the recounted value instead of being overwritten by it.
    """
    wrong = []
    courses = select(Course.id, Course.name, Course.stored_bytes).order_by(Course.id)
    with db.write() if recount else db.read() as session:
        counts = session.execute(courses.with_for_update() if recount else courses).all()
        held = dict(session.execute(_HELD).all())
        for course_id, name, counted in counts:
            actual = int(held.get(course_id, 0))
            if counted != actual:
                wrong.append(f"{name}: counted {counted}, holds {actual}")
                if recount:
                    session.execute(
                        update(Course).where(Course.id == course_id).values(stored_bytes=actual)
                    )
    return wrong
