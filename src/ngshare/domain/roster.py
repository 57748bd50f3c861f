"""Course rosters: instructors and students with the names the roster shows.

The rules every interface shares (v1, the web pages): an instructor of a
course cannot be added to it as a student; adding someone already on the
roster updates their names (and, for an instructor, their role); removing a
student keeps their submissions, which reference the user name only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from ngshare.db.models import Member
from ngshare.domain.lookup import member
from ngshare.errors import Conflict, NotFound

NAME_FIELDS = (("first_name", "first name"), ("last_name", "last name"), ("email", "email"))
INSTRUCTOR_AS_STUDENT = "Cannot add instructor as student"


def person(row: Member) -> dict[str, str | None]:
    return {
        "username": row.username,
        "first_name": row.first_name,
        "last_name": row.last_name,
        "email": row.email,
    }


def members(session: Session, course_id: int, role: str) -> list[Member]:
    return list(
        session.scalars(
            select(Member)
            .where(Member.course_id == course_id, Member.role == role)
            .order_by(Member.username)
        )
    )


def roster(session: Session, course_id: int, role: str) -> list[dict[str, str | None]]:
    return [person(row) for row in members(session, course_id, role)]


def upsert(
    session: Session, course_id: int, username: str, role: str, names: Mapping[str, str | None]
) -> bool:
    """Add `username` with `role`, or update the row they have; True when added."""
    row = session.scalar(
        select(Member).where(Member.course_id == course_id, Member.username == username)
    )
    added = row is None
    if row is None:
        row = Member(course_id=course_id, username=username)
        session.add(row)
    row.role = role
    for field, _label in NAME_FIELDS:
        if field in names:
            setattr(row, field, names[field])
    return added


def set_instructor(
    session: Session, course_id: int, username: str, names: Mapping[str, str | None]
) -> bool:
    """Make `username` an instructor (a student becomes one); True when newly added."""
    return upsert(session, course_id, username, "instructor", names)


def set_student(
    session: Session, course_id: int, username: str, names: Mapping[str, str | None]
) -> bool:
    """Add or update a student; 409 for an instructor of the course. True when added."""
    if member(session, course_id, username, "instructor") is not None:
        raise Conflict(INSTRUCTOR_AS_STUDENT)
    return upsert(session, course_id, username, "student", names)


@dataclass(frozen=True)
class StudentOutcome:
    username: str
    outcome: str  # "added", "updated" or "refused"
    message: str | None = None

    @property
    def success(self) -> bool:
        return self.outcome != "refused"


def set_students(
    session: Session, course_id: int, entries: Iterable[Mapping[str, str]]
) -> list[StudentOutcome]:
    """Add or update many students; each entry has `username` and the name fields."""
    outcomes = []
    for entry in entries:
        username = entry["username"]
        names = {field: entry[field] for field, _ in NAME_FIELDS if field in entry}
        try:
            added = set_student(session, course_id, username, names)
        except Conflict as exc:
            outcomes.append(StudentOutcome(username, "refused", exc.message))
            continue
        session.flush()
        outcomes.append(StudentOutcome(username, "added" if added else "updated"))
    return outcomes


def remove(session: Session, course_id: int, username: str, role: str) -> None:
    """Take a user off the roster; 404 `Student not found` / `Instructor not found`."""
    row = member(session, course_id, username, role)
    if row is None:
        raise NotFound(f"{role.capitalize()} not found")
    session.delete(row)
