"""v1 routes for courses: list, create, delete."""

from __future__ import annotations

import json

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import delete, select, union
from sqlalchemy.exc import IntegrityError

from ngshare.api.v1.deps import AdminUser, CourseAdmin, CurrentUser, State, V1Args, check_name
from ngshare.api.v1.responses import ok
from ngshare.db.models import Assignment, Course, Feedback, FileSet, Member, Release, Submission
from ngshare.errors import BadRequest, Conflict

router = APIRouter(tags=["v1: courses"])


@router.get("/courses")
def list_courses(user: CurrentUser, state: State) -> JSONResponse:
    """Courses the caller teaches or takes; every course for admins."""
    with state.db.read() as session:
        query = select(Course.name)
        if not user.admin:
            query = query.join(Member).where(Member.username == user.name)
        names = sorted(set(session.scalars(query)))
    return ok(courses=names)


def _instructor_names(raw: str) -> list[str]:
    try:
        names = json.loads(raw)
    except ValueError:
        raise BadRequest("Instructors cannot be JSON decoded") from None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise BadRequest("Instructors cannot be JSON decoded")
    return [check_name(n, "user") for n in dict.fromkeys(names)]


@router.post("/course/{course}")
def create_course(course: str, user: AdminUser, args: V1Args, state: State) -> JSONResponse:
    check_name(course, "course")
    with state.db.read() as session:
        if session.scalar(select(Course.id).where(Course.name == course)) is not None:
            raise Conflict("Course already exists")
    instructors = _instructor_names(args.get("instructors", "[]"))
    try:
        with state.db.write() as session:
            row = Course(name=course)
            row.members = [Member(username=n, role="instructor") for n in instructors]
            session.add(row)
    except IntegrityError:
        raise Conflict("Course already exists") from None
    return ok()


@router.delete("/course/{course}")
def delete_course(ctx: CourseAdmin, state: State) -> JSONResponse:
    """Delete a course with its roster, assignments, submissions and feedback."""
    with state.db.write() as session:
        assignment_ids = select(Assignment.id).where(Assignment.course_id == ctx.course_id)
        submission_ids = select(Submission.id).where(Submission.assignment_id.in_(assignment_ids))
        fileset_ids = list(
            session.scalars(
                union(
                    select(Release.fileset_id).where(Release.assignment_id.in_(assignment_ids)),
                    select(Submission.fileset_id).where(
                        Submission.assignment_id.in_(assignment_ids)
                    ),
                    select(Feedback.fileset_id).where(Feedback.submission_id.in_(submission_ids)),
                )
            )
        )
        session.execute(delete(Course).where(Course.id == ctx.course_id))
        if fileset_ids:
            session.execute(delete(FileSet).where(FileSet.id.in_(fileset_ids)))
    return ok()
