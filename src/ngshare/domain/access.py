"""Who may read which blob.

Blobs are shared between trees (identical files are stored once), so reading
one by its hash is allowed only when the caller may read some tree of this
course that contains it: any release for members; for instructors every
submission, feedback and solutions; for a student their own submissions and
feedback, and the solutions the `solutions` setting lets them fetch.
"""

from __future__ import annotations

from sqlalchemy import exists, select, union_all
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


def may_read_blob(session: Session, ctx: CourseContext, sha256: str) -> bool:
    assignments = select(Assignment.id).where(Assignment.course_id == ctx.course_id)
    own = select(Submission).where(Submission.assignment_id.in_(assignments))
    if not ctx.is_instructor:
        own = own.where(Submission.student == ctx.user.name)
    own_ids = own.with_only_columns(Submission.id)
    readable = union_all(
        select(Release.fileset_id).where(Release.assignment_id.in_(assignments)),
        own.with_only_columns(Submission.fileset_id),
        select(Feedback.fileset_id).where(Feedback.submission_id.in_(own_ids)),
    ).subquery()
    query = select(
        exists().where(FileEntry.sha256 == sha256, FileEntry.fileset_id.in_(select(readable.c[0])))
    )
    if session.scalar(query):
        return True
    solutions = _solution_sets(session, ctx)
    return bool(solutions) and bool(
        session.scalar(
            select(exists().where(FileEntry.sha256 == sha256, FileEntry.fileset_id.in_(solutions)))
        )
    )
