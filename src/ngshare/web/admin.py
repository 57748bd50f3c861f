"""Admin pages: every course, create a course, delete a course (after confirming)."""

from __future__ import annotations

import re

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy import func, select

from ngshare.db.models import Assignment, Member, Submission
from ngshare.domain.courses import create_course, delete_course
from ngshare.errors import NgshareError
from ngshare.web.pages import (
    AdminDep,
    CourseAdmin,
    Form,
    PageRoute,
    State,
    page_url,
    redirect,
    render,
    text_field,
)
from ngshare.web.queries import courses_overview

router = APIRouter(route_class=PageRoute)


@router.get("/ui/admin")
def admin_courses(request: Request, viewer: AdminDep, state: State) -> HTMLResponse:
    with state.db.read() as session:
        courses = courses_overview(session, None, viewer.name)
    return render(request, "admin.html", viewer, title="All courses", courses=courses)


@router.post("/ui/admin/courses")
def add_course(request: Request, viewer: AdminDep, form: Form, state: State) -> RedirectResponse:
    name = text_field(form, "course")
    instructors = [n for n in re.split(r"[\s,]+", text_field(form, "instructors")) if n]
    try:
        create_course(state.db, name, instructors)
    except NgshareError as exc:
        return redirect(
            request, page_url(state, "admin"), f"Course not created: {exc.message}", kind="error"
        )
    return redirect(request, page_url(state, "courses", name), f"Course {name} created.")


def _contents(state, course_id: int) -> dict[str, int]:
    with state.db.read() as session:
        assignment_ids = select(Assignment.id).where(Assignment.course_id == course_id)
        return {
            "members": session.scalar(
                select(func.count()).select_from(Member).where(Member.course_id == course_id)
            )
            or 0,
            "assignments": session.scalar(
                select(func.count())
                .select_from(Assignment)
                .where(Assignment.course_id == course_id)
            )
            or 0,
            "submissions": session.scalar(
                select(func.count())
                .select_from(Submission)
                .where(Submission.assignment_id.in_(assignment_ids))
            )
            or 0,
        }


@router.get("/ui/admin/courses/{course}/delete")
def confirm_delete(request: Request, ctx: CourseAdmin, state: State) -> HTMLResponse:
    return render(
        request,
        "course_delete.html",
        ctx.viewer,
        title=f"Delete course {ctx.course}",
        course=ctx.course,
        contents=_contents(state, ctx.course_id),
    )


@router.post("/ui/admin/courses/{course}/delete")
def delete(request: Request, ctx: CourseAdmin, form: Form, state: State) -> RedirectResponse:
    if text_field(form, "confirm") != ctx.course:
        return redirect(
            request,
            page_url(state, "admin", "courses", ctx.course, "delete"),
            "Not deleted: type the course name exactly to confirm.",
            kind="error",
        )
    with state.db.write() as session:
        delete_course(session, ctx.course_id)
    return redirect(request, page_url(state, "admin"), f"Course {ctx.course} deleted.")
