"""Lookups that raise the contract's 404 messages when something is missing."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, exists, select
from sqlalchemy.orm import Session

from ngshare.db.models import Assignment, Member, Submission
from ngshare.domain.policies import own_work_readable, visible_to_students
from ngshare.errors import NotFound
from ngshare.timestamps import now

# Statements every request runs are built once, with bound parameters: building a
# statement and computing its cache key cost more than running it on SQLite.
_ASSIGNMENT = select(Assignment).where(
    Assignment.course_id == bindparam("course_id"), Assignment.name == bindparam("name")
)
_RELEASED = _ASSIGNMENT.where(Assignment.current_release_id.is_not(None))


def released_assignment(session: Session, course_id: int, name: str) -> Assignment:
    """The assignment if it currently has a release; 404 `Assignment not found`."""
    assignment = session.scalar(_RELEASED, {"course_id": course_id, "name": name})
    if assignment is None:
        raise NotFound("Assignment not found")
    return assignment


def fetchable_assignment(
    session: Session, course_id: int, name: str, instructor: bool
) -> Assignment:
    """A released assignment that the caller may list, fetch and submit: for
    students not a draft and not before its scheduled time (404 otherwise)."""
    assignment = released_assignment(session, course_id, name)
    if not instructor and not visible_to_students(assignment, now()):
        raise NotFound("Assignment not found")
    return assignment


def submittable_assignment(
    session: Session, course_id: int, name: str, instructor: bool
) -> Assignment:
    """A released assignment the caller may try to submit: for students also a
    closed or archived one, so that the refusal names the rule."""
    assignment = released_assignment(session, course_id, name)
    if not instructor and not own_work_readable(assignment, now()):
        raise NotFound("Assignment not found")
    return assignment


def visible_assignment(session: Session, course_id: int, name: str, instructor: bool) -> Assignment:
    """For instructors any assignment of the course, withdrawn ones too (their
    submissions and feedback stay reachable); for everyone else a released one
    that is visible to students or archived (their own work stays reachable)."""
    if not instructor:
        assignment = released_assignment(session, course_id, name)
        if not own_work_readable(assignment, now()):
            raise NotFound("Assignment not found")
        return assignment
    assignment = session.scalar(_ASSIGNMENT, {"course_id": course_id, "name": name})
    if assignment is None:
        raise NotFound("Assignment not found")
    return assignment


def member(session: Session, course_id: int, username: str, role: str) -> Member | None:
    return session.scalar(
        select(Member).where(
            Member.course_id == course_id, Member.username == username, Member.role == role
        )
    )


def require_student(session: Session, course_id: int, assignment_id: int, username: str) -> None:
    """A course member, or someone removed from the roster who still has submissions."""
    in_course = session.scalar(
        select(exists().where(Member.course_id == course_id, Member.username == username))
    )
    if in_course:
        return
    submitted = session.scalar(
        select(
            exists().where(
                Submission.assignment_id == assignment_id, Submission.student == username
            )
        )
    )
    if not submitted:
        raise NotFound("Student not found")


def find_submission(
    session: Session, assignment_id: int, student: str, timestamp: datetime | None
) -> Submission:
    """The submission at `timestamp`, or the latest; 404 `Submission not found`."""
    query = select(Submission).where(
        Submission.assignment_id == assignment_id, Submission.student == student
    )
    if timestamp is None:
        query = query.order_by(Submission.timestamp.desc()).limit(1)
    else:
        query = query.where(Submission.timestamp == timestamp)
    submission = session.scalar(query)
    if submission is None:
        raise NotFound("Submission not found")
    return submission


_LATEST_TIMESTAMP = (
    select(Submission.timestamp)
    .where(
        Submission.assignment_id == bindparam("assignment_id"),
        Submission.student == bindparam("student"),
    )
    .order_by(Submission.timestamp.desc())
    .limit(1)
)


def latest_timestamp(session: Session, assignment_id: int, student: str) -> datetime | None:
    return session.scalar(_LATEST_TIMESTAMP, {"assignment_id": assignment_id, "student": student})
