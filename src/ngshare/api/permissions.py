"""Per-course permission checks shared by the API versions.

Each API version has its own way to find the caller (v1 may read the user
from a form field in dev mode; v2 never reads the body before it streams it),
so `Permissions(user_dependency)` builds the same set of route dependencies
on top of either. A route declares what it needs by its parameter types:
`CourseMember`, `CourseInstructor`, `InstructorOrSelf`, `CourseAdmin`,
`AdminUser`. Each check looks the course up first (404 `Course not found`)
and only then decides (403 `Permission denied`).
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Path
from sqlalchemy import bindparam, select

from ngshare.auth import User
from ngshare.db.models import Course, Member
from ngshare.errors import BadRequest, NotFound, PermissionDenied
from ngshare.state import AppState, state_dependency

MAX_NAME_LENGTH = 255


def check_name(value: str, what: str) -> str:
    """Course, assignment and user names: printable, not `.`/`..`, at most 255 characters."""
    if (
        not value
        or len(value) > MAX_NAME_LENGTH
        or value in (".", "..")
        or any(ord(ch) < 32 or ord(ch) == 127 for ch in value)
    ):
        raise BadRequest(f"Illegal {what} name")
    return value


@dataclass(frozen=True)
class CourseContext:
    """The caller's standing in one course, looked up once per request."""

    user: User
    course_id: int
    course: str
    role: str | None

    @property
    def is_instructor(self) -> bool:
        return self.user.admin or self.role == "instructor"

    @property
    def is_member(self) -> bool:
        return self.user.admin or self.role is not None


def load_course_context(state: AppState, course: str, user: User) -> CourseContext:
    """The course's id and the caller's role in it, in one round trip (every request asks)."""
    check_name(course, "course")
    with state.db.connect() as connection:
        row = connection.execute(_CONTEXT_QUERY, {"course": course, "user": user.name}).first()
    if row is None:
        raise NotFound("Course not found")
    return CourseContext(user=user, course_id=row.id, course=course, role=row.role)


_CONTEXT_QUERY = (
    select(Course.id, Member.role)
    .outerjoin(
        Member,
        (Member.course_id == Course.id) & (Member.username == bindparam("user")),
    )
    .where(Course.name == bindparam("course"))
)


class Permissions:
    """Route dependencies for one way of finding the caller."""

    def __init__(self, user_dependency: Callable[..., Any]) -> None:
        CurrentUser = Annotated[User, Depends(user_dependency)]

        def course_context(
            course: Annotated[str, Path(description="Course name")],
            user: CurrentUser,
            state: AppState = Depends(state_dependency),
        ) -> CourseContext:
            return load_course_context(state, course, user)

        Context = Annotated[CourseContext, Depends(course_context)]

        # The checks below only read the context: async, so no worker-thread round trip.

        async def admin_user(user: CurrentUser) -> User:
            if not user.admin:
                raise PermissionDenied()
            return user

        async def course_admin(ctx: Context) -> CourseContext:
            if not ctx.user.admin:
                raise PermissionDenied()
            return ctx

        async def course_member(ctx: Context) -> CourseContext:
            if not ctx.is_member:
                raise PermissionDenied()
            return ctx

        async def course_instructor(ctx: Context) -> CourseContext:
            if not ctx.is_instructor:
                raise PermissionDenied()
            return ctx

        async def instructor_or_self(
            student: Annotated[str, Path(description="Student user name")], ctx: Context
        ) -> CourseContext:
            """Instructors, or the student named in the path while they belong to the course."""
            if ctx.is_instructor or (ctx.user.name == student and ctx.role is not None):
                return ctx
            raise PermissionDenied()

        self.CurrentUser = CurrentUser
        self.CourseContext = Context
        self.AdminUser = Annotated[User, Depends(admin_user)]
        self.CourseAdmin = Annotated[CourseContext, Depends(course_admin)]
        self.CourseMember = Annotated[CourseContext, Depends(course_member)]
        self.CourseInstructor = Annotated[CourseContext, Depends(course_instructor)]
        self.InstructorOrSelf = Annotated[CourseContext, Depends(instructor_or_self)]
