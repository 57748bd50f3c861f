"""Courses: create with their first instructors, delete with everything in them."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import delete, select, union
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ngshare.api.permissions import check_name
from ngshare.auth import User
from ngshare.db.engine import Database
from ngshare.db.models import Assignment, Course, Feedback, FileSet, Member, Release, Submission
from ngshare.errors import BadRequest, Conflict


def check_course_name(name: str) -> str:
    """A course name that the API can address: a legal name without `/`."""
    check_name(name, "course")
    if "/" in name:
        raise BadRequest("Illegal course name")
    return name


def course_names(session: Session, user: User) -> list[str]:
    """Courses the user teaches or takes; every course for admins."""
    query = select(Course.name)
    if not user.admin:
        query = query.join(Member).where(Member.username == user.name)
    return sorted(set(session.scalars(query)))


def ensure_new_course(db: Database, name: str) -> None:
    """409 `Course already exists` when the name is taken."""
    with db.read() as session:
        if session.scalar(select(Course.id).where(Course.name == name)) is not None:
            raise Conflict("Course already exists")


def create_course(db: Database, name: str, instructors: Iterable[str]) -> None:
    """A new course with these instructors (no names yet); 409 when the name is taken."""
    check_course_name(name)
    ensure_new_course(db, name)
    usernames = [check_name(n, "user") for n in dict.fromkeys(instructors)]
    try:
        with db.write() as session:
            row = Course(name=name)
            row.members = [Member(username=n, role="instructor") for n in usernames]
            session.add(row)
    except IntegrityError:
        raise Conflict("Course already exists") from None


def delete_course(session: Session, course_id: int) -> None:
    """Delete a course with its roster, assignments, submissions and feedback.

    The file sets go too; their blobs are left to the garbage collector.
    """
    assignment_ids = select(Assignment.id).where(Assignment.course_id == course_id)
    submission_ids = select(Submission.id).where(Submission.assignment_id.in_(assignment_ids))
    fileset_ids = list(
        session.scalars(
            union(
                select(Release.fileset_id).where(Release.assignment_id.in_(assignment_ids)),
                select(Submission.fileset_id).where(Submission.assignment_id.in_(assignment_ids)),
                select(Feedback.fileset_id).where(Feedback.submission_id.in_(submission_ids)),
                select(Assignment.solutions_fileset_id).where(
                    Assignment.course_id == course_id, Assignment.solutions_fileset_id.is_not(None)
                ),
            )
        )
    )
    session.execute(delete(Course).where(Course.id == course_id))
    if fileset_ids:
        session.execute(delete(FileSet).where(FileSet.id.in_(fileset_ids)))
