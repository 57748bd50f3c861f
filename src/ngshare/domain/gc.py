"""Garbage collection of blobs nothing refers to any more.

What becomes garbage: the file sets of deleted courses, withdrawn feedback and
replaced feedback (their rows go at once, their blobs here), blobs stored by
requests that failed before their commit, and unfinished uploads that were
abandoned.

Why it is safe while uploads are in flight: a blob is deleted only when no
file row refers to it AND it has not been written or touched for `grace`.
Every upload path touches the blobs it is about to reference (the `missing`
query, the manifest check, v1 writes) before its commit, so a blob an upload
still needs always looks recent. The time is checked again right before the
bytes go. The grace must exceed the longest time between that touch and the
commit (seconds in practice; the default is an hour).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete, exists, select, text, union

from ngshare.config import Settings
from ngshare.db.engine import Database
from ngshare.db.models import Assignment, Blob, Feedback, FileEntry, FileSet, Release, Submission
from ngshare.domain.filesets import drop_filesets
from ngshare.storage import BlobStore
from ngshare.timestamps import utcnow

log = logging.getLogger("ngshare.gc")


@dataclass
class GcReport:
    filesets_removed: int = 0
    blobs_removed: int = 0
    bytes_freed: int = 0
    uploads_expired: int = 0
    kept_recent: int = 0
    removed: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"removed {self.filesets_removed} unreferenced file sets, {self.blobs_removed} blobs "
            f"({self.bytes_freed} bytes), {self.uploads_expired} abandoned uploads; kept "
            f"{self.kept_recent} unreferenced blobs younger than the grace period"
        )


def collect_garbage(
    db: Database,
    store: BlobStore,
    grace: timedelta = timedelta(hours=1),
    upload_expiry: timedelta = timedelta(hours=24),
    dry_run: bool = False,
) -> GcReport:
    report = GcReport()
    report.filesets_removed = _drop_orphan_filesets(db, dry_run)
    _drop_blobs(db, store, grace, dry_run, report)
    _expire_uploads(store, upload_expiry, dry_run, report)
    log.info("gc%s: %s", " (dry run)" if dry_run else "", report.summary())
    return report


def gc_options(settings: Settings) -> dict[str, timedelta]:
    return {
        "grace": timedelta(minutes=settings.gc_grace_minutes),
        "upload_expiry": timedelta(hours=settings.upload_expiry_hours),
    }


GC_LOCK_ID = 0x6E676763  # "ngcc"


def collect_exclusively(db: Database, store: BlobStore, **options: object) -> GcReport | None:
    """Run the collector unless another process is running it (PostgreSQL advisory lock)."""
    if db.is_sqlite:
        return collect_garbage(db, store, **options)  # type: ignore[arg-type]
    with db.engine.connect() as connection:
        got = connection.scalar(text("SELECT pg_try_advisory_lock(:id)"), {"id": GC_LOCK_ID})
        connection.commit()
        if not got:
            log.info("gc: another process holds the lock; skipped")
            return None
        try:
            return collect_garbage(db, store, **options)  # type: ignore[arg-type]
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": GC_LOCK_ID})
            connection.commit()


def _drop_orphan_filesets(db: Database, dry_run: bool) -> int:
    referenced = union(
        select(Release.fileset_id),
        select(Submission.fileset_id),
        select(Feedback.fileset_id),
        select(Assignment.solutions_fileset_id).where(Assignment.solutions_fileset_id.is_not(None)),
    ).subquery()
    orphan = select(FileSet.id).where(FileSet.id.not_in(select(referenced.c[0])))
    with db.write() as session:
        ids = list(session.scalars(orphan))
        if ids and not dry_run:
            drop_filesets(session, ids)
    return len(ids)


def _drop_blobs(
    db: Database, store: BlobStore, grace: timedelta, dry_run: bool, report: GcReport
) -> None:
    with db.read() as session:
        referenced = set(session.scalars(select(FileEntry.sha256).distinct()))
    cutoff = utcnow() - grace
    for sha256, written in list(store.list_blobs()):
        if sha256 in referenced:
            continue
        if written > cutoff:
            report.kept_recent += 1
            continue
        if dry_run:
            report.removed.append(sha256)
            continue
        if _forget_blob(db, sha256) and _still_old(store, sha256, cutoff):
            report.bytes_freed += store.size(sha256) or 0
            store.delete(sha256)
            report.blobs_removed += 1
            report.removed.append(sha256)


def _forget_blob(db: Database, sha256: str) -> bool:
    """Delete the blob's row unless a file refers to it (checked inside the transaction)."""
    with db.write() as session:
        in_use = session.scalar(select(exists().where(FileEntry.sha256 == sha256)))
        if in_use:
            return False
        session.execute(delete(Blob).where(Blob.sha256 == sha256))
    return True


def _still_old(store: BlobStore, sha256: str, cutoff: datetime) -> bool:
    written = store.written_at(sha256)
    return written is not None and written <= cutoff


def _expire_uploads(store: BlobStore, expiry: timedelta, dry_run: bool, report: GcReport) -> None:
    cutoff = utcnow() - expiry
    for path, written in list(store.list_temporary()):
        if written <= cutoff:
            report.uploads_expired += 1
            if not dry_run:
                path.unlink(missing_ok=True)
