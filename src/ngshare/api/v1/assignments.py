"""v1 routes for released assignments: list, download, release, withdraw.

Deleting an assignment withdraws its release but keeps the assignment and its
submissions: nbgrader's `release_assignment --force` through a v1 client is a
delete followed by a new release, and must not destroy students' work. The
new release becomes the next version of the same assignment.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, StreamingResponse
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from ngshare.api.v1.deps import CourseInstructor, CourseMember, State, V1Args, check_name
from ngshare.api.v1.responses import ok, streamed
from ngshare.db.models import Assignment, Release
from ngshare.domain.filesets import (
    create_fileset,
    decode_v1_files,
    list_files,
    store_files,
    v1_tree_json,
    with_md5,
)
from ngshare.domain.lookup import released_assignment
from ngshare.errors import Conflict
from ngshare.timestamps import utcnow

router = APIRouter(tags=["v1: assignments"])


@router.get("/assignments/{course}")
def list_assignments(ctx: CourseMember, state: State) -> JSONResponse:
    """Names of the released assignments, in the order they were first released."""
    with state.db.read() as session:
        names = session.scalars(
            select(Assignment.name)
            .where(Assignment.course_id == ctx.course_id)
            .where(Assignment.current_release_id.is_not(None))
            .order_by(Assignment.id)
        )
        return ok(assignments=list(names))


@router.get("/assignment/{course}/{assignment}")
def download_assignment(
    assignment: str, ctx: CourseMember, args: V1Args, state: State
) -> StreamingResponse:
    with state.db.read() as session:
        row = released_assignment(session, ctx.course_id, assignment)
        release = session.get(Release, row.current_release_id)
        assert release is not None
        files = list_files(session, release.fileset_id)
    files = with_md5(state.db, state.store, files)
    return streamed(v1_tree_json(state.store, files, args.flag("list_only"), {}))


@router.post("/assignment/{course}/{assignment}")
def release_assignment(
    assignment: str, ctx: CourseInstructor, args: V1Args, state: State
) -> JSONResponse:
    check_name(assignment, "assignment")
    with state.db.read() as session:
        if _is_released(session, ctx.course_id, assignment):
            raise Conflict("Assignment already exists")
    staged = store_files(state.store, decode_v1_files(args.get("files"), state.limits))
    try:
        with state.db.write() as session:
            if _is_released(session, ctx.course_id, assignment):
                raise Conflict("Assignment already exists")
            row = session.scalar(
                select(Assignment).where(
                    Assignment.course_id == ctx.course_id, Assignment.name == assignment
                )
            )
            if row is None:
                row = Assignment(course_id=ctx.course_id, name=assignment)
                session.add(row)
                session.flush()
            version = session.scalar(
                select(func.coalesce(func.max(Release.version), 0)).where(
                    Release.assignment_id == row.id
                )
            )
            fileset = create_fileset(session, "release", staged)
            release = Release(
                assignment_id=row.id,
                version=version + 1,
                fileset_id=fileset.id,
                created_by=ctx.user.name,
            )
            session.add(release)
            session.flush()
            row.current_release_id = release.id
            row.released_at = utcnow()
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
def withdraw_assignment(assignment: str, ctx: CourseInstructor, state: State) -> JSONResponse:
    """Withdraw the release; submissions and earlier versions are kept."""
    with state.db.write() as session:
        row = released_assignment(session, ctx.course_id, assignment)
        row.current_release_id = None
    return ok()
