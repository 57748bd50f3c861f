"""v1 routes for course rosters: instructors and students with their names."""

from __future__ import annotations

import json

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from ngshare.api.docs import form
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
from ngshare.domain import roster
from ngshare.domain.lookup import member
from ngshare.domain.roster import NAME_FIELDS, person
from ngshare.errors import BadRequest, NotFound, PermissionDenied

NAMES = form("first_name", "last_name", "email", required=("first_name", "last_name", "email"))

router = APIRouter(tags=["v1: rosters"])


def _names(args: Args) -> dict[str, str]:
    return {field: args.required(field, f"Please supply {label}") for field, label in NAME_FIELDS}


# Instructors


@router.post("/instructor/{course}/{instructor}", openapi_extra=NAMES)
def set_instructor(
    instructor: str, ctx: CourseContextDep, args: V1Args, state: State
) -> JSONResponse:
    """Admins add or update any instructor; an instructor may update only himself."""
    if not (ctx.user.admin or (ctx.role == "instructor" and ctx.user.name == instructor)):
        raise PermissionDenied()
    check_name(instructor, "user")
    names = _names(args)
    state.db.write_retrying(lambda s: roster.set_instructor(s, ctx.course_id, instructor, names))
    return ok()


@router.get("/instructor/{course}/{instructor}")
def get_instructor(instructor: str, ctx: CourseMember, state: State) -> JSONResponse:
    with state.db.read() as session:
        row = member(session, ctx.course_id, instructor, "instructor")
        if row is None:
            raise NotFound("Instructor not found")
        return ok(**person(row))


@router.delete("/instructor/{course}/{instructor}")
def remove_instructor(instructor: str, ctx: CourseAdmin, state: State) -> JSONResponse:
    with state.db.write() as session:
        roster.remove(session, ctx.course_id, instructor, "instructor")
    return ok()


@router.get("/instructors/{course}")
def list_instructors(ctx: CourseMember, state: State) -> JSONResponse:
    with state.db.read() as session:
        return ok(instructors=roster.roster(session, ctx.course_id, "instructor"))


# Students


@router.post("/student/{course}/{student}", openapi_extra=NAMES)
def set_student(student: str, ctx: CourseInstructor, args: V1Args, state: State) -> JSONResponse:
    check_name(student, "user")
    names = _names(args)
    state.db.write_retrying(lambda s: roster.set_student(s, ctx.course_id, student, names))
    return ok()


@router.get("/student/{course}/{student}")
def get_student(student: str, ctx: InstructorOrSelf, state: State) -> JSONResponse:
    with state.db.read() as session:
        row = member(session, ctx.course_id, student, "student")
        if row is None:
            raise NotFound("Student not found")
        return ok(**person(row))


@router.delete("/student/{course}/{student}")
def remove_student(student: str, ctx: CourseInstructor, state: State) -> JSONResponse:
    """Remove a student from the roster; their submissions stay."""
    with state.db.write() as session:
        roster.remove(session, ctx.course_id, student, "student")
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


@router.post("/students/{course}", openapi_extra=form("students", required=("students",)))
def set_students(ctx: CourseInstructor, args: V1Args, state: State) -> JSONResponse:
    """Add or update many students at once; the answer reports each entry."""
    students = _parse_students(args.get("students"))
    outcomes = state.db.write_retrying(lambda s: roster.set_students(s, ctx.course_id, students))
    status = [
        {"username": o.username, "success": True}
        if o.success
        else {"username": o.username, "success": False, "message": o.message}
        for o in outcomes
    ]
    return ok(status=status)


@router.get("/students/{course}")
def list_students(ctx: CourseInstructor, state: State) -> JSONResponse:
    with state.db.read() as session:
        return ok(students=roster.roster(session, ctx.course_id, "student"))
