"""Checking a v2 manifest before it is committed.

A manifest names every file of a tree by path, sha256, size and executable
bit. It is accepted only when the tree is well formed, within the limits and
the course quota, and every blob it names is already stored with the stated
size. Present blobs are touched, so the garbage collector leaves them alone
until the commit has made them referenced.
"""

from __future__ import annotations

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from ngshare.config import Limits
from ngshare.db.models import Course
from ngshare.domain.filesets import StagedFile
from ngshare.errors import BadRequest, Conflict, TooLarge
from ngshare.paths import check_tree
from ngshare.storage import BlobStore, Digest


def check_manifest(files: list, limits: Limits, store: BlobStore) -> list[StagedFile]:
    """StagedFiles for the manifest entries (objects with path, sha256, size, executable)."""
    check_shape(files, limits)
    missing = []
    for sha256, size in {f.sha256: f.size for f in files}.items():
        stored = store.size(sha256)
        if stored is None:
            missing.append(sha256)
        elif stored != size:
            raise BadRequest(f"Blob {sha256} holds {stored} bytes, the manifest says {size}")
        else:
            store.touch(sha256)
    if missing:
        raise Conflict(
            f"{len(missing)} file(s) are not uploaded yet; upload the missing blobs first",
            reason="blobs_missing",
            extra={"missing": missing},
        )
    return [
        StagedFile(f.path, Digest(f.sha256, "", f.size), executable=f.executable) for f in files
    ]


def check_shape(files: list, limits: Limits) -> None:
    """A well-formed tree within the limits on file count, file size and total size."""
    _check_count(files, limits)  # first: the tree check's cost grows with the count
    check_tree((f.path for f in files), named=True)
    for entry in files:
        if entry.size > limits.file_bytes:
            mib = limits.file_bytes // 2**20
            raise TooLarge(f"File {entry.path} exceeds the largest file limit of {mib} MiB")
    _check_bytes(files, limits)


def check_totals(files: list, limits: Limits) -> None:
    """The limits of one upload on file count and total size, which the trees of a
    bulk request share."""
    _check_count(files, limits)
    _check_bytes(files, limits)


def _check_count(files: list, limits: Limits) -> None:
    if len(files) > limits.files_per_upload:
        raise TooLarge(f"Too many files: the limit is {limits.files_per_upload} per upload")


def _check_bytes(files: list, limits: Limits) -> None:
    if sum(f.size for f in files) > limits.upload_bytes:
        mib = limits.upload_bytes // 2**20
        raise TooLarge(f"The files add up to more than the upload limit of {mib} MiB")


_USAGE = select(Course.stored_bytes).where(Course.id == bindparam("course_id"))


def course_usage(session: Session, course_id: int) -> int:
    """Bytes the course's releases, submissions, feedback and solutions take at full
    size: one row's counter (`ngshare.domain.usage` keeps it), not a sum."""
    return int(session.scalar(_USAGE, {"course_id": course_id}) or 0)


def check_quota(session: Session, course_id: int, adding: int, limits: Limits) -> None:
    """413 when the course would store more than its quota with `adding` bytes more
    (what this transaction's own changes add; nothing to check when they free some)."""
    if not limits.course_quota_bytes or adding <= 0:
        return
    if course_usage(session, course_id) + adding > limits.course_quota_bytes:
        mib = limits.course_quota_bytes // 2**20
        raise TooLarge(f"The course storage quota of {mib} MiB would be exceeded")
