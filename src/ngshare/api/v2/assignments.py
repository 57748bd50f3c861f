"""v2 assignments: list, manifest of a release version, release, withdraw, archive.

Releasing a manifest makes a new version unless it equals the current one
(then the call is an idempotent no-op). Earlier versions stay readable with
`?version=N`, so submissions keep pointing at what they were made against.
"""

from __future__ import annotations

import anyio
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from sqlalchemy import bindparam, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ngshare.api.origin import V2Origin
from ngshare.api.permissions import CourseContext, check_name
from ngshare.api.v2.bundles import MANIFEST_BODY, checked_manifest
from ngshare.api.v2.deps import CourseInstructor, CourseMember, State
from ngshare.api.v2.inline import INLINE_DOC, manifest_answer
from ngshare.api.v2.schemas import (
    AssignmentList,
    AssignmentOut,
    AssignmentSummary,
    ManifestFile,
)
from ngshare.api.v2.transfer import archive_response
from ngshare.db.models import Assignment, FileSet, Release
from ngshare.domain.archives import ArchiveEntry
from ngshare.domain.audit import Origin
from ngshare.domain.filesets import ListedFile, list_files, manifest_digest
from ngshare.domain.lookup import fetchable_assignment, released_assignment
from ngshare.domain.manifests import check_manifest, check_quota
from ngshare.domain.policies import effective_state, show, visible_to_students
from ngshare.domain.releases import add_release, assignment_row, current_release
from ngshare.domain.status import student_statuses
from ngshare.errors import Conflict, NotFound
from ngshare.state import AppState
from ngshare.timestamps import now

router = APIRouter(tags=["v2: assignments"])


def manifest_files(files: list[ListedFile]) -> list[ManifestFile]:
    return [
        ManifestFile(path=f.path, sha256=f.sha256, size=f.size, executable=f.executable)
        for f in files
    ]


_LATEST_VERSION = select(func.max(Release.version)).where(
    Release.assignment_id == bindparam("assignment_id")
)  # built once: every fetch asks


def _release(session: Session, assignment: Assignment, version: int | None) -> Release:
    if version is None:
        release = session.get(Release, assignment.current_release_id)
    else:
        release = session.scalar(
            select(Release).where(
                Release.assignment_id == assignment.id, Release.version == version
            )
        )
    if release is None:
        raise NotFound(f"Assignment {assignment.name} has no version {version}")
    return release


def policy_fields(assignment: Assignment, moment) -> dict:
    return {
        "state": assignment.state,
        "effective_state": effective_state(assignment, moment),
        "visible_at": assignment.visible_at,
        "due_at": assignment.due_at,
        "timezone": assignment.timezone,
        "due": show(assignment.due_at, assignment.timezone),
        "late_window_seconds": assignment.late_window_seconds,
        "max_submissions": assignment.max_submissions,
        "solutions": assignment.solutions,
    }


def _summary(assignment: Assignment, release: Release, fileset: FileSet, moment=None) -> dict:
    return {
        "name": assignment.name,
        "version": release.version,
        "released_at": release.created_at,
        "file_count": fileset.file_count,
        "total_size": fileset.total_size,
        **policy_fields(assignment, moment or now()),
    }


@router.get("/courses/{course}/assignments", response_model=AssignmentList)
def list_assignments(ctx: CourseMember, state: State) -> AssignmentList:
    """Released assignments with their current version, in order of first release.

    Students see those visible to them (not drafts, not before their scheduled
    time, not archived), each with their own standing in `me`."""
    moment = now()
    with state.db.read() as session:
        rows = session.execute(
            select(Assignment, Release, FileSet)
            .join(Release, Release.id == Assignment.current_release_id)
            .join(FileSet, FileSet.id == Release.fileset_id)
            .where(Assignment.course_id == ctx.course_id)
            .order_by(Assignment.id)
        ).all()
        if not ctx.is_instructor:
            rows = [r for r in rows if visible_to_students(r[0], moment)]
            mine = student_statuses(
                session, ctx.course, [r[0] for r in rows], ctx.user.name, moment
            )
        items = [
            AssignmentSummary(
                **_summary(a, r, f, moment), me=None if ctx.is_instructor else mine[a.id]
            )
            for a, r, f in rows
        ]
    return AssignmentList(assignments=items)


@router.get(
    "/courses/{course}/assignments/{assignment}", response_model=AssignmentOut, responses=INLINE_DOC
)
def get_assignment(
    assignment: str,
    request: Request,
    response: Response,
    ctx: CourseMember,
    state: State,
    version: int | None = Query(None, ge=1, description="A release version (default: current)"),
) -> AssignmentOut | StreamingResponse:
    """The release's manifest; with `Accept: application/vnd.ngshare.bundle`, followed by
    its small files' bytes (`ngshare.api.v2.inline`)."""
    with state.db.read() as session:
        row = fetchable_assignment(session, ctx.course_id, assignment, ctx.is_instructor)
        release = _release(session, row, version)
        fileset = session.get(FileSet, release.fileset_id)
        assert fileset is not None
        latest = session.scalar(_LATEST_VERSION, {"assignment_id": row.id})
        files = manifest_files(list_files(session, release.fileset_id))
    answer = AssignmentOut(**_summary(row, release, fileset), latest_version=latest, files=files)
    return manifest_answer(request, response, state, answer, files)


@router.put(
    "/courses/{course}/assignments/{assignment}",
    response_model=AssignmentOut,
    responses={409: {"description": "Blobs missing (`missing` lists them)"}},
    openapi_extra=MANIFEST_BODY,
)
async def release_assignment(
    assignment: str, request: Request, ctx: CourseInstructor, state: State, origin: V2Origin
) -> JSONResponse:
    """Release the tree as the next version (201), or confirm the identical current one (200).

    The body is the manifest (JSON) or a bundle with the files' bytes
    (`ngshare.api.v2.bundles`).
    """
    files = await checked_manifest(
        request, state, ctx.user.name, check_name, assignment, "assignment"
    )
    return await anyio.to_thread.run_sync(_commit_release, state, ctx, origin, assignment, files)


def _commit_release(
    state: AppState,
    ctx: CourseContext,
    origin: Origin,
    assignment: str,
    files: list[ManifestFile],
) -> JSONResponse:
    staged = check_manifest(files, state.limits, state.store)
    digest = manifest_digest(staged)
    try:
        with state.db.write() as session:
            row = assignment_row(session, ctx.course_id, assignment)
            current = current_release(session, row)
            created = current is None or current.fileset.digest != digest
            if created:
                adding = sum(f.digest.size for f in staged)
                check_quota(session, ctx.course_id, adding, state.limits)
                current = add_release(session, row, staged, ctx.user.name)
                origin.record(
                    session,
                    ctx.course,
                    "release",
                    ctx.user.name,
                    assignment=assignment,
                    version=current.version,
                    digest=digest,
                )
            body = AssignmentOut(
                **_summary(row, current, current.fileset),
                latest_version=current.version,
                files=files,
            )
    except IntegrityError:
        raise Conflict("The assignment was released by another request at the same time") from None
    return JSONResponse(body.model_dump(mode="json"), status_code=201 if created else 200)


@router.delete("/courses/{course}/assignments/{assignment}")
def withdraw_assignment(
    assignment: str, ctx: CourseInstructor, state: State, origin: V2Origin
) -> JSONResponse:
    """Withdraw the current release; versions and submissions are kept."""
    with state.db.write() as session:
        released_assignment(session, ctx.course_id, assignment).current_release_id = None
        origin.record(session, ctx.course, "withdraw", ctx.user.name, assignment=assignment)
    return JSONResponse({"withdrawn": assignment})


@router.get("/courses/{course}/assignments/{assignment}/archive")
def download_assignment_archive(
    assignment: str,
    request: Request,
    ctx: CourseMember,
    state: State,
    origin: V2Origin,
    format: str = Query("tar", description="tar or zip"),
    version: int | None = Query(None, ge=1),
) -> StreamingResponse:
    """The whole release as one streamed archive, files under `<assignment>/`."""
    with state.db.read() as session:
        row = fetchable_assignment(session, ctx.course_id, assignment, ctx.is_instructor)
        release = _release(session, row, version)
        files = list_files(session, release.fileset_id)
        version, digest = release.version, release.fileset.digest
    origin.record(
        state.db,
        ctx.course,
        "fetch",
        ctx.user.name,
        assignment=assignment,
        version=version,
        digest=digest,
    )
    entries = [
        ArchiveEntry(f"{assignment}/{f.path}", f.sha256, f.size, f.executable) for f in files
    ]
    return archive_response(format, assignment, entries, state.store, state.memory)
