"""v2 courses: the caller's courses with their role in each, and for the courses they
teach (all, for admins) what the course stores against its quota."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import literal, select

from ngshare.api.v2.deps import CurrentUser, State
from ngshare.api.v2.schemas import CourseList, CourseOut
from ngshare.db.models import Course, Member

router = APIRouter(tags=["v2: courses"])


@router.get("/courses", response_model=CourseList)
def list_courses(user: CurrentUser, state: State) -> CourseList:
    columns = select(Course.name, Course.stored_bytes)
    with state.db.read() as session:
        if user.admin:
            rows = session.execute(columns.add_columns(literal("admin"))).all()
        else:
            mine = columns.add_columns(Member.role).join(Member)
            rows = session.execute(mine.where(Member.username == user.name)).all()
    quota = state.limits.course_quota_bytes or None
    return CourseList(courses=[_course(*row, quota) for row in sorted(rows)])


def _course(name: str, stored: int, role: str, quota: int | None) -> CourseOut:
    if role == "student":
        return CourseOut(name=name, role=role)
    return CourseOut(name=name, role=role, stored_bytes=stored, quota_bytes=quota)
