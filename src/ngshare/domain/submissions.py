"""Listing submissions with their release version, files and feedback, in one query.

Shared by the v2 API and the web pages, so both show the same facts.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import BindParameter, Row, Select, bindparam, func, select
from sqlalchemy.orm import Session, aliased

from ngshare.db.models import Assignment, Feedback, FileSet, Release, Submission
from ngshare.domain.archives import ArchiveEntry, Entry, InlineEntry
from ngshare.domain.audit import Origin
from ngshare.domain.filesets import NewFileSet, StagedFile, create_fileset, list_files
from ngshare.domain.lookup import latest_timestamp, submittable_assignment
from ngshare.domain.policies import judge_submission
from ngshare.timestamps import format_v1, next_after, now


def submissions_query(assignment_id: int | BindParameter) -> Select:
    """Rows of (Submission, release version, FileSet, Feedback | None, feedback FileSet | None)."""
    feedback_set = aliased(FileSet)
    return (
        select(Submission, Release.version, FileSet, Feedback, feedback_set)
        .join(FileSet, FileSet.id == Submission.fileset_id)
        .outerjoin(Release, Release.id == Submission.release_id)
        .outerjoin(Feedback, Feedback.submission_id == Submission.id)
        .outerjoin(feedback_set, feedback_set.id == Feedback.fileset_id)
        .where(Submission.assignment_id == assignment_id)
        .order_by(Submission.timestamp, Submission.student)
    )


# Built once, as every keyed submission asks: whether the client's idempotency key
# was used (parameters assignment_id, student, key). Nearly always it was not, and
# this one-column lookup costs a fraction of loading BY_KEY's five entities to learn so.
KEY_USED = select(Submission.id).where(
    Submission.assignment_id == bindparam("assignment_id"),
    Submission.student == bindparam("student"),
    Submission.client_key == bindparam("key"),
)
# The submission made with that key, described in full.
BY_KEY = submissions_query(bindparam("assignment_id")).where(
    Submission.student == bindparam("student"), Submission.client_key == bindparam("key")
)

# One submission by id, built once (each feedback fetch and download asks); parameters
# assignment_id, student, submission_id.
ONE_SUBMISSION = submissions_query(bindparam("assignment_id")).where(
    Submission.student == bindparam("student"), Submission.id == bindparam("submission_id")
)


def submission_summary(row: Row | tuple) -> dict:
    """One row of `submissions_query` as the v2 API describes a submission."""
    submission, version, fileset, feedback, feedback_set = row
    return {
        "id": submission.id,
        "student": submission.student,
        "timestamp": format_v1(submission.timestamp),
        "submitted_at": submission.timestamp,
        "release_version": version,
        "file_count": fileset.file_count,
        "total_size": fileset.total_size,
        "deadline": submission.deadline,
        "on_time": submission.on_time,
        "late_by_seconds": None
        if submission.on_time is not False
        else (submission.timestamp - submission.deadline).total_seconds(),
        "feedback": None
        if feedback is None
        else {"updated_at": feedback.created_at, "file_count": feedback_set.file_count},
    }


def latest_only(query: Select, assignment_id: int) -> Select:
    """Restrict `submissions_query` to each student's newest submission."""
    newest = (
        select(Submission.student, func.max(Submission.timestamp).label("newest"))
        .where(Submission.assignment_id == assignment_id)
        .group_by(Submission.student)
        .subquery()
    )
    return query.join(
        newest,
        (newest.c.student == Submission.student) & (newest.c.newest == Submission.timestamp),
    )


def collect_entries(
    session: Session, assignment_id: int, students: Iterable[str] = ()
) -> list[Entry]:
    """Every (or each named) student's newest submission as archive entries.

    `<student>/<files>`, after a `submissions.json` that lists student, id and
    timestamp of each submission included.
    """
    wanted = set(students)
    query = latest_only(submissions_query(assignment_id), assignment_id)
    if wanted:
        query = query.where(Submission.student.in_(wanted))
    picked = [
        (r[0].student, submission_summary(r), list_files(session, r[0].fileset_id))
        for r in session.execute(query)
    ]
    index = [{k: out[k] for k in ("student", "id", "timestamp")} for _s, out, _f in picked]
    entries: list[Entry] = [InlineEntry("submissions.json", json.dumps(index, indent=1).encode())]
    for student, _out, files in picked:
        entries += [
            ArchiveEntry(f"{student}/{f.path}", f.sha256, f.size, f.executable) for f in files
        ]
    return entries


def precheck_submission(
    session: Session, who: Submitter, assignment: str, row: Assignment | None = None
) -> None:
    """Refuse (closed, late, over the limit) before any byte is stored.

    `row`: the assignment, when the caller has looked it up already.
    """
    if row is None:
        row = submittable_assignment(session, who.course_id, assignment, who.instructor)
    stamp = next_after(now(), latest_timestamp(session, row.id, who.name))
    judge_submission(session, row, who.name, stamp, not who.instructor)


def add_submission(
    session: Session,
    who: Submitter,
    assignment: str,
    files: list[StagedFile],
    origin: Origin,
    client_key: str | None = None,
) -> Submitted:
    """Inside a write transaction: judge the rules at this instant, stamp, commit, record.

    The stamp is strictly after the student's previous one; a simultaneous
    submission taking the same stamp makes the transaction fail with an
    IntegrityError, which the caller retries.
    """
    row = submittable_assignment(session, who.course_id, assignment, who.instructor)
    stamp = next_after(now(), latest_timestamp(session, row.id, who.name))
    verdict = judge_submission(session, row, who.name, stamp, not who.instructor)
    fileset = create_fileset(session, who.course_id, "submission", files)
    submission = Submission(
        assignment_id=row.id,
        student=who.name,
        timestamp=stamp,
        release_id=row.current_release_id,
        fileset_id=fileset.id,
        client_key=client_key,
        deadline=verdict.deadline,
        on_time=verdict.on_time,
    )
    session.add(submission)
    session.flush()
    origin.record(
        session,
        who.course,
        "submit",
        who.name,
        assignment=assignment,
        student=who.name,
        submission_id=submission.id,
        digest=fileset.digest,
    )
    return Submitted(submission, fileset)


_RELEASE_VERSION = select(Release.version).where(Release.id == bindparam("release_id"))


def release_version(session: Session, release_id: int | None) -> int | None:
    """The version number of a release (which never changes once made)."""
    if release_id is None:
        return None
    return session.scalar(_RELEASE_VERSION, {"release_id": release_id})


@dataclass(frozen=True)
class Submitted:
    """A submission just added, with its file set: enough to describe it without a query."""

    submission: Submission
    fileset: NewFileSet

    def summary(self, release_version: int | None) -> dict:
        """`submission_summary` of the new submission (it has no feedback yet)."""
        return submission_summary((self.submission, release_version, self.fileset, None, None))


@dataclass(frozen=True)
class Submitter:
    """Who submits, in which course (instructors may submit whatever the rules say)."""

    name: str
    course_id: int
    course: str
    instructor: bool
