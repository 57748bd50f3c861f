"""The caller and permission dependencies of v2.

v2 never reads the request body to find the caller (bodies are streamed to
the blob store), so dev mode takes the user from the query string only.
"""

from typing import Annotated

from fastapi import Depends, Request

from ngshare.api.permissions import Permissions
from ngshare.auth import User, authenticate
from ngshare.state import AppState, state_dependency


async def current_user(request: Request, state: AppState = Depends(state_dependency)) -> User:
    return await authenticate(state.authenticator, state.signer, request, {})


v2 = Permissions(current_user)
CurrentUser = v2.CurrentUser
CourseMember = v2.CourseMember
CourseInstructor = v2.CourseInstructor
InstructorOrSelf = v2.InstructorOrSelf
State = Annotated[AppState, Depends(state_dependency)]
