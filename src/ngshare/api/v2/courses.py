"""v2 courses: the caller's courses with their role in each."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import select

from ngshare.api.v2.deps import CurrentUser, State
from ngshare.api.v2.schemas import CourseList, CourseOut
from ngshare.db.models import Course, Member

router = APIRouter(tags=["v2: courses"])


@router.get("/courses", response_model=CourseList)
def list_courses(user: CurrentUser, state: State) -> CourseList:
    with state.db.read() as session:
        roles = dict(
            session.execute(
                select(Course.name, Member.role).join(Member).where(Member.username == user.name)
            ).all()
        )
        if user.admin:
            names = session.scalars(select(Course.name)).all()
            roles = {name: "admin" for name in names}
    return CourseList(courses=[CourseOut(name=n, role=r) for n, r in sorted(roles.items())])
