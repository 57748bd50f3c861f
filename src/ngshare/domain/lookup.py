"""Lookups that raise the contract's 404 messages when something is missing."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from ngshare.db.models import Assignment, Member, Submission
from ngshare.errors import NotFound


def released_assignment(session: Session, course_id: int, name: str) -> Assignment:
    """The assignment if it currently has a release; 404 `Assignment not found`."""
    assignment = session.scalar(
        select(Assignment).where(
            Assignment.course_id == course_id,
            Assignment.name == name,
            Assignment.current_release_id.is_not(None),
        )
    )
    if assignment is None:
        raise NotFound("Assignment not found")
    return assignment


def visible_assignment(session: Session, course_id: int, name: str, instructor: bool) -> Assignment:
    """For instructors any assignment of the course, withdrawn ones too (their
    submissions and feedback stay reachable); for everyone else a released one."""
    if not instructor:
        return released_assignment(session, course_id, name)
    assignment = session.scalar(
        select(Assignment).where(Assignment.course_id == course_id, Assignment.name == name)
    )
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


def latest_timestamp(session: Session, assignment_id: int, student: str) -> datetime | None:
    return session.scalar(
        select(Submission.timestamp)
        .where(Submission.assignment_id == assignment_id, Submission.student == student)
        .order_by(Submission.timestamp.desc())
        .limit(1)
    )
