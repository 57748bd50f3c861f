"""v1 routes for courses: list, create, delete."""

from __future__ import annotations

import json

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from ngshare.api.docs import form
from ngshare.api.v1.deps import AdminUser, CourseAdmin, CurrentUser, State, V1Args, check_name
from ngshare.api.v1.responses import ok
from ngshare.domain.courses import course_names, ensure_new_course
from ngshare.domain.courses import create_course as create
from ngshare.domain.courses import delete_course as delete
from ngshare.errors import BadRequest

router = APIRouter(tags=["v1: courses"])


@router.get("/courses")
def list_courses(user: CurrentUser, state: State) -> JSONResponse:
    """Courses the caller teaches or takes; every course for admins."""
    with state.db.read() as session:
        names = course_names(session, user)
    return ok(courses=names)


def _instructor_names(raw: str) -> list[str]:
    try:
        names = json.loads(raw)
    except ValueError:
        raise BadRequest("Instructors cannot be JSON decoded") from None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise BadRequest("Instructors cannot be JSON decoded")
    return [check_name(n, "user") for n in dict.fromkeys(names)]


@router.post("/course/{course}", openapi_extra=form("instructors"))
def create_course(course: str, user: AdminUser, args: V1Args, state: State) -> JSONResponse:
    check_name(course, "course")
    ensure_new_course(state.db, course)
    instructors = _instructor_names(args.get("instructors", "[]"))
    create(state.db, course, instructors)
    return ok()


@router.delete("/course/{course}")
def delete_course(ctx: CourseAdmin, state: State) -> JSONResponse:
    """Delete a course with its roster, assignments, submissions and feedback."""
    with state.db.write() as session:
        delete(session, ctx.course_id)
    return ok()
