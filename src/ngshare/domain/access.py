"""Who may read which blob.

Blobs are shared between trees (identical files are stored once), so reading
one by its hash is allowed only when the caller may read some tree of this
course that contains it: any release for members; for instructors every
submission, feedback and solutions; for a student their own submissions and
feedback, and the solutions the `solutions` setting lets them fetch.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import Select, bindparam, select, union_all
from sqlalchemy.orm import Session

from ngshare.api.permissions import CourseContext
from ngshare.db.models import Assignment, Feedback, FileEntry, Release, Submission
from ngshare.domain.policies import extension_of, solutions_open
from ngshare.timestamps import now


def _solution_sets(session: Session, ctx: CourseContext) -> list[int]:
    rows = session.scalars(
        select(Assignment).where(
            Assignment.course_id == ctx.course_id, Assignment.solutions_fileset_id.is_not(None)
        )
    )
    if ctx.is_instructor:
        return [a.solutions_fileset_id for a in rows]  # type: ignore[misc]
    moment = now()
    return [
        a.solutions_fileset_id  # type: ignore[misc]
        for a in rows
        if solutions_open(a, extension_of(session, a.id, ctx.user.name) or a.due_at, moment)
    ]


def _readable_query(instructor: bool) -> Select:
    """sha256s among `:hashes` in a tree of course `:course_id` that the caller may read."""
    assignments = select(Assignment.id).where(Assignment.course_id == bindparam("course_id"))
    own = select(Submission).where(Submission.assignment_id.in_(assignments))
    if not instructor:
        own = own.where(Submission.student == bindparam("user"))
    own_ids = own.with_only_columns(Submission.id)
    readable = union_all(
        select(Release.fileset_id).where(Release.assignment_id.in_(assignments)),
        own.with_only_columns(Submission.fileset_id),
        select(Feedback.fileset_id).where(Feedback.submission_id.in_(own_ids)),
    ).subquery()
    return (
        select(FileEntry.sha256)
        .distinct()
        .where(
            FileEntry.sha256.in_(bindparam("hashes", expanding=True)),
            FileEntry.fileset_id.in_(select(readable.c[0])),
        )
    )


# built once (every download asks): for instructors, and for students
_READABLE = {True: _readable_query(True), False: _readable_query(False)}


def readable_blobs(session: Session, ctx: CourseContext, hashes: Collection[str]) -> set[str]:
    """Which of `hashes` the caller may read, in one query (plus one for solutions)."""
    wanted = set(hashes)
    if not wanted:
        return set()
    params = {"course_id": ctx.course_id, "user": ctx.user.name, "hashes": list(wanted)}
    found = set(session.scalars(_READABLE[ctx.is_instructor], params))
    rest = wanted - found
    solutions = _solution_sets(session, ctx) if rest else []
    if solutions:
        found |= set(
            session.scalars(
                select(FileEntry.sha256)
                .distinct()
                .where(FileEntry.sha256.in_(rest), FileEntry.fileset_id.in_(solutions))
            )
        )
    return found


def may_read_blob(session: Session, ctx: CourseContext, sha256: str) -> bool:
    return sha256 in readable_blobs(session, ctx, [sha256])
