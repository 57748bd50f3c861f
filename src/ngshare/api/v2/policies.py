"""v2 course policies of one assignment: settings, per-student extensions, solutions.

See docs/policies.md for the rules. Settings and extensions are recorded in
the audit history (`settings`, `extension`); so are released and fetched
solutions.
"""

from __future__ import annotations

from datetime import timedelta

import anyio
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ngshare.api.origin import V2Origin
from ngshare.api.permissions import CourseContext, check_name
from ngshare.api.v2.assignments import manifest_files, policy_fields
from ngshare.api.v2.bundles import MANIFEST_BODY, checked_manifest
from ngshare.api.v2.deps import CourseInstructor, CourseMember, State
from ngshare.api.v2.inline import INLINE_DOC, manifest_answer
from ngshare.api.v2.schemas import (
    AssignmentSettings,
    AssignmentSettingsIn,
    ExtensionIn,
    ExtensionOut,
    ManifestFile,
)
from ngshare.db.models import Assignment, Extension, FileSet, Member, Release
from ngshare.domain.audit import Origin
from ngshare.domain.filesets import create_fileset, drop_filesets, list_files, manifest_digest
from ngshare.domain.lookup import visible_assignment
from ngshare.domain.manifests import check_manifest, check_quota
from ngshare.domain.policies import (
    PolicyRefused,
    extensions_of,
    late_until,
    parse_moment,
    show,
    solutions_open,
    zone,
)
from ngshare.domain.releases import assignment_row
from ngshare.domain.status import student_statuses
from ngshare.errors import BadRequest, NotFound
from ngshare.state import AppState
from ngshare.timestamps import now

router = APIRouter(tags=["v2: course policies"])

BASE = "/courses/{course}/assignments/{assignment}"


def _assignment(session: Session, ctx: CourseContext, name: str) -> Assignment:
    if not ctx.is_instructor:
        return visible_assignment(session, ctx.course_id, name, False)
    row = session.scalar(
        select(Assignment).where(Assignment.course_id == ctx.course_id, Assignment.name == name)
    )
    if row is None:
        raise NotFound("Assignment not found")
    return row


def _extension_out(row: Extension, timezone: str | None) -> ExtensionOut:
    return ExtensionOut(
        student=row.student,
        due_at=row.due_at,
        due=show(row.due_at, timezone) or "",
        created_by=row.created_by,
    )


def settings_of(session: Session, ctx: CourseContext, row: Assignment) -> AssignmentSettings:
    moment = now()
    version = None
    if row.current_release_id is not None:
        version = session.scalar(
            select(Release.version).where(Release.id == row.current_release_id)
        )
    extensions = extensions_of(session, row.id)
    me = None
    if not ctx.is_instructor:
        extensions = {k: v for k, v in extensions.items() if k == ctx.user.name}
        me = student_statuses(session, ctx.course, [row], ctx.user.name, moment)[row.id]
    return AssignmentSettings(
        name=row.name,
        version=version,
        has_solutions=row.solutions_fileset_id is not None,
        late_until=late_until(row, row.due_at),
        extensions=[_extension_out(e, row.timezone) for e in extensions.values()],
        me=me,
        **policy_fields(row, moment),
    )


@router.get(BASE + "/settings", response_model=AssignmentSettings)
def get_settings(assignment: str, ctx: CourseMember, state: State) -> AssignmentSettings:
    """The assignment's policies; students see their own extension and standing in `me`."""
    with state.db.read() as session:
        return settings_of(session, ctx, _assignment(session, ctx, assignment))


def _apply(row: Assignment, body: AssignmentSettingsIn, fields: set[str]) -> None:
    timezone = body.timezone if "timezone" in fields else row.timezone
    if "timezone" in fields:
        if timezone is not None:
            zone(timezone)  # 400 for an unknown name
        row.timezone = timezone
    for name in ("visible_at", "due_at"):
        if name in fields:
            text = getattr(body, name)
            setattr(row, name, None if text is None else parse_moment(text, timezone))
    for name in ("state", "late_window_seconds", "max_submissions", "solutions"):
        if name in fields:
            setattr(row, name, getattr(body, name))


def _save_settings(
    assignment: str,
    body: AssignmentSettingsIn,
    fields: set[str],
    ctx: CourseContext,
    state,
    origin,
) -> AssignmentSettings:
    check_name(assignment, "assignment")
    if not fields:
        raise BadRequest("Nothing to change: give at least one setting")

    def save(session: Session) -> AssignmentSettings:
        row = assignment_row(session, ctx.course_id, assignment)
        _apply(row, body, fields)
        origin.record(session, ctx.course, "settings", ctx.user.name, assignment=assignment)
        session.flush()
        return settings_of(session, ctx, row)

    return state.db.write_retrying(save)  # two requests may create the assignment at once


@router.put(BASE + "/settings", response_model=AssignmentSettings)
def put_settings(
    assignment: str,
    body: AssignmentSettingsIn,
    ctx: CourseInstructor,
    state: State,
    origin: V2Origin,
) -> AssignmentSettings:
    """Replace all policies (missing fields take their defaults). Creates the assignment,
    unreleased, when it does not exist yet (e.g. as a draft before its first release)."""
    return _save_settings(
        assignment, body, set(AssignmentSettingsIn.model_fields), ctx, state, origin
    )


@router.patch(BASE + "/settings", response_model=AssignmentSettings)
def patch_settings(
    assignment: str,
    body: AssignmentSettingsIn,
    ctx: CourseInstructor,
    state: State,
    origin: V2Origin,
) -> AssignmentSettings:
    """Change the policies given; the others stay."""
    return _save_settings(assignment, body, set(body.model_fields_set), ctx, state, origin)


# Extensions


@router.get(BASE + "/extensions", response_model=list[ExtensionOut])
def list_extensions(assignment: str, ctx: CourseInstructor, state: State) -> list[ExtensionOut]:
    with state.db.read() as session:
        row = _assignment(session, ctx, assignment)
        return [_extension_out(e, row.timezone) for e in extensions_of(session, row.id).values()]


@router.put(BASE + "/extensions/{student}", response_model=ExtensionOut)
def put_extension(
    assignment: str,
    student: str,
    body: ExtensionIn,
    ctx: CourseInstructor,
    state: State,
    origin: V2Origin,
) -> ExtensionOut:
    """Give a student their own deadline (replacing an earlier extension). Submissions
    already made keep the on-time flag they got."""
    return state.db.write_retrying(
        lambda session: _put_extension(session, assignment, student, body, ctx, origin)
    )  # two requests for one student may insert at once: the second attempt updates


def _put_extension(
    session: Session,
    assignment: str,
    student: str,
    body: ExtensionIn,
    ctx: CourseContext,
    origin: Origin,
) -> ExtensionOut:
    row = _assignment(session, ctx, assignment)
    on_roster = session.scalar(
        select(Member.id).where(
            Member.course_id == ctx.course_id,
            Member.username == student,
            Member.role == "student",
        )
    )
    if on_roster is None:
        raise NotFound(f"Student not found: {student} is not a student of {ctx.course}")
    if (body.due_at is None) == (body.extra_seconds is None):
        raise BadRequest("Give either due_at or extra_seconds")
    if body.due_at is not None:
        due = parse_moment(body.due_at, row.timezone)
    else:
        if row.due_at is None:
            raise BadRequest(f"{assignment} has no deadline to extend: set one, or give due_at")
        due = row.due_at + timedelta(seconds=body.extra_seconds or 0)
    found = session.scalar(
        select(Extension).where(Extension.assignment_id == row.id, Extension.student == student)
    )
    if found is None:
        found = Extension(assignment_id=row.id, student=student)
        session.add(found)
    found.due_at = due
    found.created_by = ctx.user.name
    origin.record(
        session, ctx.course, "extension", ctx.user.name, assignment=assignment, student=student
    )
    session.flush()
    return _extension_out(found, row.timezone)


@router.delete(BASE + "/extensions/{student}")
def delete_extension(
    assignment: str, student: str, ctx: CourseInstructor, state: State, origin: V2Origin
) -> JSONResponse:
    with state.db.write() as session:
        row = _assignment(session, ctx, assignment)
        gone = session.execute(
            delete(Extension).where(Extension.assignment_id == row.id, Extension.student == student)
        ).rowcount
        if not gone:
            raise NotFound(f"{student} has no extension for {assignment}")
        origin.record(
            session, ctx.course, "extension", ctx.user.name, assignment=assignment, student=student
        )
    return JSONResponse({"removed": student})


# Solutions


@router.put(BASE + "/solutions", openapi_extra=MANIFEST_BODY)
async def put_solutions(
    assignment: str, request: Request, ctx: CourseInstructor, state: State, origin: V2Origin
) -> JSONResponse:
    """Store the solutions (replacing earlier ones). Who may fetch them is the
    `solutions` setting: none (default), all, or after_due.

    The body is the manifest (JSON) or a bundle with the files' bytes
    (`ngshare.api.v2.bundles`).
    """
    files = await checked_manifest(
        request, state, ctx.user.name, _find_assignment, state, ctx, assignment
    )
    return await anyio.to_thread.run_sync(_store_solutions, state, ctx, origin, assignment, files)


def _find_assignment(state: AppState, ctx: CourseContext, assignment: str) -> None:
    with state.db.read() as session:
        _assignment(session, ctx, assignment)


def _store_solutions(
    state: AppState,
    ctx: CourseContext,
    origin: Origin,
    assignment: str,
    files: list[ManifestFile],
) -> JSONResponse:
    staged = check_manifest(files, state.limits, state.store)
    with state.db.write() as session:
        row = _assignment(session, ctx, assignment)
        old = row.solutions_fileset_id
        if old is not None:
            current = session.get(FileSet, old)
            if current is not None and current.digest == manifest_digest(staged):
                return JSONResponse({"assignment": assignment, "changed": False})
        check_quota(session, ctx.course_id, sum(f.digest.size for f in staged), state.limits)
        row.solutions_fileset_id = create_fileset(session, ctx.course_id, "solutions", staged).id
        session.flush()
        if old is not None:
            drop_filesets(session, [old])
        origin.record(
            session, ctx.course, "solutions_release", ctx.user.name, assignment=assignment
        )
    return JSONResponse({"assignment": assignment, "changed": True})


@router.get(BASE + "/solutions", response_model=None, responses=INLINE_DOC)
def get_solutions(
    assignment: str,
    request: Request,
    response: Response,
    ctx: CourseMember,
    state: State,
    origin: V2Origin,
) -> BaseModel | Response:
    """The solutions' manifest (download the files as blobs; with `Accept:
    application/vnd.ngshare.bundle`, the small ones follow it, `ngshare.api.v2.inline`).
    Students: once the `solutions` setting lets them (all, or after their deadline and
    late window)."""
    moment = now()
    with state.db.read() as session:
        row = _assignment(session, ctx, assignment)
        if row.solutions_fileset_id is None:
            raise NotFound(f"No solutions for {assignment}")
        if not ctx.is_instructor:
            deadline = extension_deadline(session, row, ctx.user.name)
            if not solutions_open(row, deadline, moment):
                raise PolicyRefused(
                    _solutions_refusal(row, deadline), reason="solutions_not_released"
                )
        files = manifest_files(list_files(session, row.solutions_fileset_id))
    if not ctx.is_instructor:
        origin.record(state.db, ctx.course, "solutions_fetch", ctx.user.name, assignment=assignment)
    answer = {"assignment": assignment, "files": [f.model_dump() for f in files]}
    return manifest_answer(request, response, state, answer, files)


def extension_deadline(session: Session, row: Assignment, student: str):
    found = session.scalar(
        select(Extension.due_at).where(
            Extension.assignment_id == row.id, Extension.student == student
        )
    )
    return found or row.due_at


def _solutions_refusal(row: Assignment, deadline) -> str:
    if row.solutions != "after_due":
        return f"The solutions of {row.name} are not released"
    closes = late_until(row, deadline) or deadline
    if closes is None:
        return f"The solutions of {row.name} come after the deadline, and none is set"
    return f"The solutions of {row.name} are released after {show(closes, row.timezone)}"


@router.delete(BASE + "/solutions")
def withdraw_solutions(
    assignment: str, ctx: CourseInstructor, state: State, origin: V2Origin
) -> JSONResponse:
    with state.db.write() as session:
        row = _assignment(session, ctx, assignment)
        old = row.solutions_fileset_id
        if old is None:
            raise NotFound(f"No solutions for {assignment}")
        row.solutions_fileset_id = None
        session.flush()
        drop_filesets(session, [old])
        origin.record(
            session, ctx.course, "solutions_withdraw", ctx.user.name, assignment=assignment
        )
    return JSONResponse({"withdrawn": assignment})
