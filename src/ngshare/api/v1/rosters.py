"""v1 routes for course rosters: instructors and students with their names."""

from __future__ import annotations

import json

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from ngshare.api.v1.deps import (
    Args,
    CourseAdmin,
    CourseContextDep,
    CourseInstructor,
    CourseMember,
    InstructorOrSelf,
    State,
    V1Args,
    check_name,
)
from ngshare.api.v1.responses import ok
from ngshare.db.models import Member
from ngshare.domain.lookup import member
from ngshare.errors import BadRequest, Conflict, NotFound, PermissionDenied

router = APIRouter(tags=["v1: rosters"])

NAME_FIELDS = (("first_name", "first name"), ("last_name", "last name"), ("email", "email"))


def _person(row: Member) -> dict[str, str | None]:
    return {
        "username": row.username,
        "first_name": row.first_name,
        "last_name": row.last_name,
        "email": row.email,
    }


def _names(args: Args) -> dict[str, str]:
    return {field: args.required(field, f"Please supply {label}") for field, label in NAME_FIELDS}


def _roster(session: Session, course_id: int, role: str) -> list[dict[str, str | None]]:
    rows = session.scalars(
        select(Member)
        .where(Member.course_id == course_id, Member.role == role)
        .order_by(Member.username)
    )
    return [_person(row) for row in rows]


def _upsert(session: Session, course_id: int, username: str, role: str, names: dict) -> None:
    row = session.scalar(
        select(Member).where(Member.course_id == course_id, Member.username == username)
    )
    if row is None:
        row = Member(course_id=course_id, username=username)
        session.add(row)
    row.role = role
    for field, value in names.items():
        setattr(row, field, value)


# Instructors


@router.post("/instructor/{course}/{instructor}")
def set_instructor(
    instructor: str, ctx: CourseContextDep, args: V1Args, state: State
) -> JSONResponse:
    """Admins add or update any instructor; an instructor may update only himself."""
    if not (ctx.user.admin or (ctx.role == "instructor" and ctx.user.name == instructor)):
        raise PermissionDenied()
    check_name(instructor, "user")
    names = _names(args)
    with state.db.write() as session:
        _upsert(session, ctx.course_id, instructor, "instructor", names)
    return ok()


@router.get("/instructor/{course}/{instructor}")
def get_instructor(instructor: str, ctx: CourseMember, state: State) -> JSONResponse:
    with state.db.read() as session:
        row = member(session, ctx.course_id, instructor, "instructor")
        if row is None:
            raise NotFound("Instructor not found")
        return ok(**_person(row))


@router.delete("/instructor/{course}/{instructor}")
def remove_instructor(instructor: str, ctx: CourseAdmin, state: State) -> JSONResponse:
    with state.db.write() as session:
        row = member(session, ctx.course_id, instructor, "instructor")
        if row is None:
            raise NotFound("Instructor not found")
        session.delete(row)
    return ok()


@router.get("/instructors/{course}")
def list_instructors(ctx: CourseMember, state: State) -> JSONResponse:
    with state.db.read() as session:
        return ok(instructors=_roster(session, ctx.course_id, "instructor"))


# Students


@router.post("/student/{course}/{student}")
def set_student(student: str, ctx: CourseInstructor, args: V1Args, state: State) -> JSONResponse:
    check_name(student, "user")
    names = _names(args)
    with state.db.write() as session:
        if member(session, ctx.course_id, student, "instructor") is not None:
            raise Conflict("Cannot add instructor as student")
        _upsert(session, ctx.course_id, student, "student", names)
    return ok()


@router.get("/student/{course}/{student}")
def get_student(student: str, ctx: InstructorOrSelf, state: State) -> JSONResponse:
    with state.db.read() as session:
        row = member(session, ctx.course_id, student, "student")
        if row is None:
            raise NotFound("Student not found")
        return ok(**_person(row))


@router.delete("/student/{course}/{student}")
def remove_student(student: str, ctx: CourseInstructor, state: State) -> JSONResponse:
    """Remove a student from the roster; their submissions stay."""
    with state.db.write() as session:
        row = member(session, ctx.course_id, student, "student")
        if row is None:
            raise NotFound("Student not found")
        session.delete(row)
    return ok()


def _parse_students(raw: str | None) -> list[dict[str, str]]:
    if not raw:
        raise BadRequest("Please supply students")
    try:
        students = json.loads(raw)
    except ValueError:
        raise BadRequest("Students cannot be JSON decoded") from None
    if not isinstance(students, list):
        raise BadRequest("Incorrect request format")
    if not students:
        raise BadRequest("Please supply students")
    fields = ("username", "first_name", "last_name", "email")
    for entry in students:
        if not isinstance(entry, dict) or not all(isinstance(entry.get(f), str) for f in fields):
            raise BadRequest("Incorrect request format")
        check_name(entry["username"], "user")
    return students


@router.post("/students/{course}")
def set_students(ctx: CourseInstructor, args: V1Args, state: State) -> JSONResponse:
    """Add or update many students at once; the answer reports each entry."""
    students = _parse_students(args.get("students"))
    status = []
    with state.db.write() as session:
        for entry in students:
            username = entry["username"]
            if member(session, ctx.course_id, username, "instructor") is not None:
                status.append(
                    {
                        "username": username,
                        "success": False,
                        "message": "Cannot add instructor as student",
                    }
                )
                continue
            names = {field: entry[field] for field, _ in NAME_FIELDS}
            _upsert(session, ctx.course_id, username, "student", names)
            session.flush()
            status.append({"username": username, "success": True})
    return ok(status=status)


@router.get("/students/{course}")
def list_students(ctx: CourseInstructor, state: State) -> JSONResponse:
    with state.db.read() as session:
        return ok(students=_roster(session, ctx.course_id, "student"))
