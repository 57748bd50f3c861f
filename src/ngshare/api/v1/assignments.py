"""v1 routes for released assignments: list, download, release, withdraw.

Deleting an assignment withdraws its release but keeps the assignment and its
submissions: nbgrader's `release_assignment --force` through a v1 client is a
delete followed by a new release, and must not destroy students' work. The
new release becomes the next version of the same assignment.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, StreamingResponse
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ngshare.api.docs import form, query
from ngshare.api.origin import V1Origin
from ngshare.api.v1.deps import CourseInstructor, CourseMember, State, V1Args, check_name
from ngshare.api.v1.responses import ok, tree_response
from ngshare.db.models import Assignment, Release
from ngshare.domain.filesets import (
    commit_staged,
    list_files,
    manifest_digest,
    with_md5,
)
from ngshare.domain.lookup import fetchable_assignment, released_assignment
from ngshare.domain.manifests import check_quota
from ngshare.domain.policies import visible_to_students
from ngshare.domain.releases import add_release, assignment_row
from ngshare.errors import Conflict
from ngshare.timestamps import now

router = APIRouter(tags=["v1: assignments"])


@router.get("/assignments/{course}")
def list_assignments(ctx: CourseMember, state: State) -> JSONResponse:
    """Names of the released assignments, in the order they were first released.

    Students do not see drafts, releases scheduled for later, or archived ones."""
    with state.db.read() as session:
        rows = session.scalars(
            select(Assignment)
            .where(Assignment.course_id == ctx.course_id)
            .where(Assignment.current_release_id.is_not(None))
            .order_by(Assignment.id)
        )
        moment = now()
        names = [a.name for a in rows if ctx.is_instructor or visible_to_students(a, moment)]
        return ok(assignments=names)


@router.get("/assignment/{course}/{assignment}", openapi_extra=query("list_only"))
def download_assignment(
    assignment: str, ctx: CourseMember, args: V1Args, state: State, origin: V1Origin
) -> StreamingResponse:
    with state.db.read() as session:
        row = fetchable_assignment(session, ctx.course_id, assignment, ctx.is_instructor)
        release = session.get(Release, row.current_release_id)
        assert release is not None
        files = list_files(session, release.fileset_id)
        version, digest = release.version, release.fileset.digest
    files = with_md5(state.db, state.store, files)
    if not args.flag("list_only"):
        origin.record(
            state.db,
            ctx.course,
            "fetch",
            ctx.user.name,
            assignment=assignment,
            version=version,
            digest=digest,
        )
    return tree_response(state, files, args.flag("list_only"), {})


@router.post("/assignment/{course}/{assignment}", openapi_extra=form("files"))
def release_assignment(
    assignment: str, ctx: CourseInstructor, args: V1Args, state: State, origin: V1Origin
) -> JSONResponse:
    check_name(assignment, "assignment")
    with state.db.read() as session:
        if _is_released(session, ctx.course_id, assignment):
            raise Conflict("Assignment already exists")
    staged = commit_staged(args.staged_files())
    try:
        with state.db.write() as session:
            row = assignment_row(session, ctx.course_id, assignment)
            if row.current_release_id is not None:
                raise Conflict("Assignment already exists")
            check_quota(session, ctx.course_id, sum(f.digest.size for f in staged), state.limits)
            release = add_release(session, row, staged, ctx.user.name)
            origin.record(
                session,
                ctx.course,
                "release",
                ctx.user.name,
                assignment=assignment,
                version=release.version,
                digest=manifest_digest(staged),
            )
    except IntegrityError:
        raise Conflict("Assignment already exists") from None
    return ok()


def _is_released(session, course_id: int, name: str) -> bool:
    return (
        session.scalar(
            select(Assignment.id).where(
                Assignment.course_id == course_id,
                Assignment.name == name,
                Assignment.current_release_id.is_not(None),
            )
        )
        is not None
    )


@router.delete("/assignment/{course}/{assignment}")
def withdraw_assignment(
    assignment: str, ctx: CourseInstructor, state: State, origin: V1Origin
) -> JSONResponse:
    """Withdraw the release; submissions and earlier versions are kept."""
    with state.db.write() as session:
        row = released_assignment(session, ctx.course_id, assignment)
        row.current_release_id = None
        origin.record(session, ctx.course, "withdraw", ctx.user.name, assignment=assignment)
    return ok()
