"""Request arguments, the caller, and the permission dependencies of v1.

v1 takes arguments from the query string and the form body alike, and in dev
mode the user name too, so the caller is known only after the body is read.
Authorization is declared on each route by its parameter types (see
`ngshare.api.permissions`).
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import Depends, Request
from starlette.requests import ClientDisconnect

from ngshare.api.permissions import Permissions, check_name
from ngshare.auth import User, authenticate
from ngshare.errors import BadRequest, TooLarge
from ngshare.state import AppState, get_state

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
    return await authenticate(state.authenticator, state.signer, request, args)


v1 = Permissions(current_user)
CurrentUser = v1.CurrentUser
CourseContextDep = v1.CourseContext
AdminUser = v1.AdminUser
CourseAdmin = v1.CourseAdmin
CourseMember = v1.CourseMember
CourseInstructor = v1.CourseInstructor
InstructorOrSelf = v1.InstructorOrSelf
V1Args = Annotated[Args, Depends(v1_args)]
State = Annotated[AppState, Depends(get_state)]

__all__ = ["User", "check_name"]
