"""Request arguments, the caller, and the permission dependencies of v1.

v1 takes arguments from the query string and the form body alike. Outside dev
mode the caller is known from the header before the body is read; in dev mode
the user name may itself be a form field.
Authorization is declared on each route by its parameter types (see
`ngshare.api.permissions`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial
from typing import Annotated
from urllib.parse import quote_plus

from fastapi import Depends, Request

from ngshare.api.permissions import Permissions, check_name
from ngshare.api.v1.form import FormDecoder, read_form
from ngshare.api.v1.known import KnownFiles, Listing, release_listing
from ngshare.api.v1.wire import FilesResult, StagedEntry
from ngshare.auth import User, authenticate
from ngshare.auth.dev import DevAuthenticator
from ngshare.errors import BadRequest
from ngshare.state import AppState, state_dependency


class Args(dict[str, str]):
    """Query-string and form fields merged; a form field wins over the same query field.

    The `files` field is not kept as text: it was decoded while it streamed in,
    into staged blobs (`staged_files`), or into the error it turned out to hold.
    """

    files: FilesResult | None = None

    def flag(self, name: str) -> bool:
        return self.get(name, "").strip().lower() in ("true", "1", "yes")

    def required(self, name: str, message: str) -> str:
        value = self.get(name)
        if value is None:
            raise BadRequest(message)
        return value

    def staged_files(self) -> list[StagedEntry]:
        """The uploaded files, or the first problem found in them (raised now)."""
        if self.files is None:
            raise BadRequest("Please supply files")
        if self.files.error is not None:
            raise self.files.error
        return self.files.entries


async def v1_args(
    request: Request, state: AppState = Depends(state_dependency)
) -> AsyncIterator[Args]:
    """The request's fields; uploaded files are staged, and dropped after the response
    unless the route committed them."""
    args = Args(request.query_params.items())
    stage = partial(state.store.stage, md5=False)
    decoder = FormDecoder(stage, state.limits, known=_known_files(request, state))
    try:
        if "files" in args:  # some old clients send it in the query string
            decoder.feed(("files=" + quote_plus(args.pop("files"))).encode())
            decoder.close()
        if request.method in ("POST", "PUT", "DELETE"):
            if not isinstance(state.authenticator, DevAuthenticator):
                # refuse strangers before reading what may be a large body
                request.state.ngshare_user = await authenticate(
                    state.authenticator, state.signer, request, args
                )
            await read_form(
                request, decoder, state.limits.request_bytes, state.settings.body_timeout_seconds
            )
        args.update(decoder.fields)
        args.files = decoder.files
        yield args
    finally:
        decoder.discard()


def _known_files(request: Request, state: AppState) -> KnownFiles | None:
    """For a submission, the files it may repeat: the assignment's current release,
    compared before decoding (see `ngshare.api.v1.known`)."""
    route = getattr(request.scope.get("route"), "path", "")
    if request.method != "POST" or not route.endswith("/submission/{course}/{assignment}"):
        return None
    course = request.path_params["course"]
    assignment = request.path_params["assignment"]

    def listing() -> Listing:
        user = getattr(request.state, "ngshare_user", None)  # known before the body is read
        return {} if user is None else release_listing(state, course, assignment, user)

    return KnownFiles(state.v1_encodings, listing)


async def current_user(
    request: Request, args: Args = Depends(v1_args), state: AppState = Depends(state_dependency)
) -> User:
    known = getattr(request.state, "ngshare_user", None)
    if known is not None:
        return known
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
State = Annotated[AppState, Depends(state_dependency)]

__all__ = ["User", "check_name"]
