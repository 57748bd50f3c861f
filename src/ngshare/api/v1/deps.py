"""Request arguments, the caller, and the per-course permission checks of v1.

Authorization is declared on each route by depending on one of
`admin_user`, `course_member`, `course_instructor` or `instructor_or_self`,
so the permission matrix can be read off the route signatures. Each check
looks the course up first (404 `Course not found`) and only then decides
(403 `Permission denied`), as the contract orders them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import Depends, Path, Request
from sqlalchemy import select
from starlette.requests import ClientDisconnect

from ngshare.auth import User
from ngshare.db.models import Course, Member
from ngshare.errors import BadRequest, NotFound, PermissionDenied, TooLarge
from ngshare.state import AppState, get_state

MAX_NAME_LENGTH = 255
FORM_TYPE = "application/x-www-form-urlencoded"


class Args(dict[str, str]):
    """Query-string and form fields merged; a form field wins over the same query field."""

    def flag(self, name: str) -> bool:
        return self.get(name, "").strip().lower() in ("true", "1", "yes")

    def required(self, name: str, message: str) -> str:
        value = self.get(name)
        if value is None:
            raise BadRequest(message)
        return value


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it passes `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"Request body exceeds the server limit of {limit // 2**20} MiB")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise TooLarge(f"Request body exceeds the server limit of {limit // 2**20} MiB")
            chunks.append(chunk)
    except ClientDisconnect:
        raise BadRequest("Client disconnected before the request body was complete") from None
    return b"".join(chunks)


async def v1_args(request: Request, state: AppState = Depends(get_state)) -> Args:
    args = Args(request.query_params.items())
    if request.method in ("POST", "PUT", "DELETE"):
        body = await read_body(request, state.limits.request_bytes)
        content_type = request.headers.get("content-type", FORM_TYPE).split(";")[0].strip()
        if body and content_type != FORM_TYPE:
            raise BadRequest(f"Request body must be {FORM_TYPE}")
        try:
            args.update(parse_qsl(body.decode("ascii"), keep_blank_values=True))
        except (UnicodeDecodeError, ValueError):
            raise BadRequest("Request body is not valid form data") from None
    return args


async def current_user(
    request: Request, args: Args = Depends(v1_args), state: AppState = Depends(get_state)
) -> User:
    return await state.authenticator.authenticate(request, args)


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


def course_context(
    course: Annotated[str, Path(description="Course name")],
    user: User = Depends(current_user),
    state: AppState = Depends(get_state),
) -> CourseContext:
    check_name(course, "course")
    with state.db.read() as session:
        course_id = session.scalar(select(Course.id).where(Course.name == course))
        if course_id is None:
            raise NotFound("Course not found")
        role = session.scalar(
            select(Member.role).where(Member.course_id == course_id, Member.username == user.name)
        )
    return CourseContext(user=user, course_id=course_id, course=course, role=role)


def admin_user(user: User = Depends(current_user)) -> User:
    if not user.admin:
        raise PermissionDenied()
    return user


def course_admin(ctx: CourseContext = Depends(course_context)) -> CourseContext:
    if not ctx.user.admin:
        raise PermissionDenied()
    return ctx


def course_member(ctx: CourseContext = Depends(course_context)) -> CourseContext:
    if not ctx.is_member:
        raise PermissionDenied()
    return ctx


def course_instructor(ctx: CourseContext = Depends(course_context)) -> CourseContext:
    if not ctx.is_instructor:
        raise PermissionDenied()
    return ctx


def instructor_or_self(
    student: Annotated[str, Path(description="Student user name")],
    ctx: CourseContext = Depends(course_context),
) -> CourseContext:
    """Instructors, or the student named in the path when they belong to the course."""
    if ctx.is_instructor or (ctx.user.name == student and ctx.role is not None):
        return ctx
    raise PermissionDenied()


CourseContextDep = Annotated[CourseContext, Depends(course_context)]
CurrentUser = Annotated[User, Depends(current_user)]
AdminUser = Annotated[User, Depends(admin_user)]
CourseAdmin = Annotated[CourseContext, Depends(course_admin)]
CourseMember = Annotated[CourseContext, Depends(course_member)]
CourseInstructor = Annotated[CourseContext, Depends(course_instructor)]
InstructorOrSelf = Annotated[CourseContext, Depends(instructor_or_self)]
V1Args = Annotated[Args, Depends(v1_args)]
State = Annotated[AppState, Depends(get_state)]
