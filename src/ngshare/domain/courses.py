"""Courses: create with their first instructors, delete with everything in them."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ngshare.api.permissions import check_name
from ngshare.auth import User
from ngshare.db.engine import Database
from ngshare.db.models import Course, FileSet, Member
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

    The file sets go too (each names its course); their blobs are left to the
    garbage collector. They are found before the course goes, which sets their
    `course_id` to NULL, and dropped after the rows that reference them.
    """
    owned = select(FileSet.id).where(FileSet.course_id == course_id)
    fileset_ids = list(session.scalars(owned))
    session.execute(delete(Course).where(Course.id == course_id))
    if fileset_ids:
        session.execute(delete(FileSet).where(FileSet.id.in_(fileset_ids)))
