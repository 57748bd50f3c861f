"""v2 submissions: submit a manifest, list (in bulk), read one, collect many.

A submission is committed from a manifest once its blobs are uploaded (or
from a bundle that carries the small ones, `ngshare.api.v2.bundles`). With
an `Idempotency-Key` header, repeating the same request (after a dropped
connection) returns the submission already made instead of a second one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import anyio
from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ngshare.api.origin import V2Origin
from ngshare.api.v2.assignments import manifest_files
from ngshare.api.v2.batches import body_bytes
from ngshare.api.v2.bundles import MANIFEST_BODY, manifest_body
from ngshare.api.v2.deps import CourseInstructor, CourseMember, InstructorOrSelf, State
from ngshare.api.v2.inline import INLINE_DOC, manifest_answer
from ngshare.api.v2.schemas import ManifestFile, SubmissionDetail, SubmissionList, SubmissionOut
from ngshare.api.v2.transfer import archive_response
from ngshare.db.models import Submission
from ngshare.domain.archives import ArchiveEntry
from ngshare.domain.audit import Origin
from ngshare.domain.filesets import list_files
from ngshare.domain.lookup import submittable_assignment, visible_assignment
from ngshare.domain.manifests import check_manifest, check_quota
from ngshare.domain.submissions import (
    BY_KEY,
    KEY_USED,
    ONE_SUBMISSION,
    Submitter,
    add_submission,
    collect_entries,
    precheck_submission,
    release_version,
)
from ngshare.domain.submissions import latest_only as _latest_only
from ngshare.domain.submissions import submission_summary as _out
from ngshare.domain.submissions import submissions_query as _query
from ngshare.errors import BadRequest, Conflict, NotFound
from ngshare.state import AppState

router = APIRouter(tags=["v2: submissions"])

KEY_RE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
SUBMIT_ATTEMPTS = 5
FILES_HELP = (
    "Also give each submission's `files` and its feedback's `files` (the nbgrader "
    "exchange lists notebooks and feedback state this way, in one request)"
)


@router.post(
    "/courses/{course}/assignments/{assignment}/submissions",
    status_code=201,
    response_model=SubmissionOut,
    openapi_extra=MANIFEST_BODY,
)
async def submit(
    assignment: str,
    request: Request,
    ctx: CourseMember,
    state: State,
    origin: V2Origin,
    idempotency_key: str | None = Header(None, description="Repeat-safe key chosen by the client"),
) -> JSONResponse:
    """Submit the tree as the caller's newest submission.

    The body is the manifest (JSON), or a bundle of the manifest and the small
    files' bytes (`application/vnd.ngshare.bundle`, see `ngshare.api.v2.bundles`),
    which submits in one request.
    """
    if idempotency_key is not None and not KEY_RE.match(idempotency_key):
        raise BadRequest("Idempotency-Key must be 1-64 letters, digits or ._:-")
    who = Submitter(ctx.user.name, ctx.course_id, ctx.course, ctx.is_instructor)
    async with state.memory.hold(body_bytes(request)):
        body = await manifest_body(request, state.limits)
        if body.reader is None:  # a JSON manifest: both steps in one worker-thread trip
            return await anyio.to_thread.run_sync(
                _commit, state, who, assignment, body.files, origin, idempotency_key
            )
        ready = await body.precheck(_prepare, state, who, assignment, idempotency_key)
        if ready.replay is not None:
            await body.discard()
            return JSONResponse(ready.replay, status_code=200)
        await body.store_blobs(state.store, ctx.user.name)
    return await anyio.to_thread.run_sync(
        _commit, state, who, assignment, body.files, origin, idempotency_key, ready
    )


@dataclass(frozen=True)
class _Ready:
    """What the commit needs that can be read before it (outside the write lock)."""

    assignment_id: int
    release_id: int | None
    version: int | None
    replay: dict | None = None


def _prepare(state: AppState, who: Submitter, assignment: str, key: str | None) -> _Ready:
    """Refuse (closed, late, over the limit) before any byte is stored; find a replay."""
    with state.db.read() as session:
        row = submittable_assignment(session, who.course_id, assignment, who.instructor)
        replay = _replay(session, row.id, who.name, key)
        if replay is not None:
            return _Ready(row.id, None, None, replay)
        precheck_submission(session, who, assignment, row)
        # looked up here, outside SQLite's one-writer lock (the release rarely changes meanwhile)
        release_id = row.current_release_id
        return _Ready(row.id, release_id, release_version(session, release_id))


def _commit(
    state: AppState,
    who: Submitter,
    assignment: str,
    files: list[ManifestFile],
    origin: Origin,
    key: str | None,
    ready: _Ready | None = None,
) -> JSONResponse:
    """Commit the manifest (every blob stored by now), retrying a clash of timestamps.

    `ready`: `_prepare`'s answer when the caller asked before storing blobs.
    """
    if ready is None:
        ready = _prepare(state, who, assignment, key)
    if ready.replay is not None:
        return JSONResponse(ready.replay, status_code=200)
    staged = check_manifest(files, state.limits, state.store)
    size = sum(f.digest.size for f in staged)
    for _attempt in range(SUBMIT_ATTEMPTS):
        try:
            with state.db.write() as session:
                check_quota(session, who.course_id, size, state.limits)
                added = add_submission(session, who, assignment, staged, origin, key)
            version = ready.version
            if added.submission.release_id != ready.release_id:
                with state.db.read() as session:
                    version = release_version(session, added.submission.release_id)
            body = added.summary(version)
            return JSONResponse(SubmissionOut(**body).model_dump(mode="json"), status_code=201)
        except IntegrityError:
            with state.db.read() as session:
                replay = _replay(session, ready.assignment_id, who.name, key)
            if replay is not None:
                return JSONResponse(replay, status_code=200)
    raise Conflict("Another submission is in progress; try again")


def _replay(session: Session, assignment_id: int, student: str, key: str | None) -> dict | None:
    if key is None:
        return None
    params = {"assignment_id": assignment_id, "student": student, "key": key}
    if session.scalar(KEY_USED, params) is None:  # a new key: the usual case
        return None
    found = session.execute(BY_KEY, params).first()
    return None if found is None else SubmissionOut(**_out(found)).model_dump(mode="json")


@router.get("/courses/{course}/assignments/{assignment}/submissions", response_model=SubmissionList)
def list_submissions(
    assignment: str,
    ctx: CourseInstructor,
    state: State,
    latest: bool = Query(False, description="Only each student's newest submission"),
    files: bool = Query(False, description=FILES_HELP),
) -> SubmissionList | JSONResponse:
    """Every submission with its feedback state, in one request."""
    with state.db.read() as session:
        row = visible_assignment(session, ctx.course_id, assignment, ctx.is_instructor)
        query = _latest_only(_query(row.id), row.id) if latest else _query(row.id)
        if files:
            return _with_files(session, session.execute(query).all())
        items = [SubmissionOut(**_out(r)) for r in session.execute(query)]
    return SubmissionList(submissions=items)


@router.get(
    "/courses/{course}/assignments/{assignment}/submissions/{student}",
    response_model=SubmissionList,
    responses=INLINE_DOC,
)
def list_student_submissions(
    assignment: str,
    student: str,
    request: Request,
    response: Response,
    ctx: InstructorOrSelf,
    state: State,
    files: bool = Query(False, description=FILES_HELP),
) -> SubmissionList | Response:
    """A student's submissions. With `files` and `Accept: application/vnd.ngshare.bundle`,
    followed by their feedback's small files (`ngshare.api.v2.inline`): fetching
    feedback is one request."""
    with state.db.read() as session:
        row = visible_assignment(session, ctx.course_id, assignment, ctx.is_instructor)
        rows = session.execute(_query(row.id).where(Submission.student == student)).all()
        if files:
            listing, feedback = _listing_with_files(session, rows)
            return manifest_answer(request, response, state, listing, feedback)
        items = [SubmissionOut(**_out(r)) for r in rows]
    return SubmissionList(submissions=items)


def _with_files(session: Session, rows) -> JSONResponse:
    return JSONResponse(_listing_with_files(session, rows)[0])


def _listing_with_files(session: Session, rows) -> tuple[dict, list[ManifestFile]]:
    """The listing with each submission's files and its feedback's; and those feedback files."""
    items = []
    feedback: list[ManifestFile] = []
    for r in rows:
        item = SubmissionOut(**_out(r)).model_dump(mode="json")
        item["files"] = [f.model_dump() for f in manifest_files(list_files(session, r[2].id))]
        if item["feedback"] is not None:
            listed = manifest_files(list_files(session, r[4].id))
            item["feedback"]["files"] = [f.model_dump() for f in listed]
            feedback += listed
        items.append(item)
    return {"submissions": items}, feedback


def find_submission_row(session: Session, ctx, assignment: str, student: str, submission_id: int):
    row = visible_assignment(session, ctx.course_id, assignment, ctx.is_instructor)
    params = {"assignment_id": row.id, "student": student, "submission_id": submission_id}
    found = session.execute(ONE_SUBMISSION, params).first()
    if found is None:
        raise NotFound("Submission not found")
    return found


@router.get(
    "/courses/{course}/assignments/{assignment}/submissions/{student}/{submission_id}",
    response_model=SubmissionDetail,
)
def get_submission(
    assignment: str, student: str, submission_id: int, ctx: InstructorOrSelf, state: State
) -> SubmissionDetail:
    with state.db.read() as session:
        found = find_submission_row(session, ctx, assignment, student, submission_id)
        files = manifest_files(list_files(session, found[0].fileset_id))
    return SubmissionDetail(**_out(found), files=files)


@router.get(
    "/courses/{course}/assignments/{assignment}/submissions/{student}/{submission_id}/archive"
)
def download_submission_archive(
    assignment: str,
    student: str,
    submission_id: int,
    ctx: InstructorOrSelf,
    state: State,
    origin: V2Origin,
    format: str = Query("tar", description="tar or zip"),
) -> StreamingResponse:
    with state.db.read() as session:
        found = find_submission_row(session, ctx, assignment, student, submission_id)
        files = list_files(session, found[0].fileset_id)
    action = "download" if ctx.user.name == student else "collect"
    origin.record(
        state.db,
        ctx.course,
        action,
        ctx.user.name,
        assignment=assignment,
        student=student,
        submission_id=submission_id,
    )
    entries = [ArchiveEntry(f"{student}/{f.path}", f.sha256, f.size, f.executable) for f in files]
    return archive_response(format, f"{assignment}-{student}", entries, state.store, state.memory)


@router.get("/courses/{course}/assignments/{assignment}/collect")
def collect(
    assignment: str,
    ctx: CourseInstructor,
    state: State,
    origin: V2Origin,
    format: str = Query("tar", description="tar or zip"),
    students: str | None = Query(None, description="Comma-separated students (default: all)"),
) -> StreamingResponse:
    """Every student's newest submission in one archive: `<student>/<files>`.

    The archive starts with `submissions.json`, which lists student, id and
    timestamp of each submission it contains.
    """
    wanted = {s for s in (students or "").split(",") if s}
    with state.db.read() as session:
        row = visible_assignment(session, ctx.course_id, assignment, ctx.is_instructor)
        entries = collect_entries(session, row.id, wanted)
        picked = _latest_only(_query(row.id), row.id)
        if wanted:
            picked = picked.where(Submission.student.in_(wanted))
        events = [
            origin.event(
                ctx.course,
                "collect",
                ctx.user.name,
                assignment=assignment,
                student=r[0].student,
                submission_id=r[0].id,
            )
            for r in session.execute(picked)
        ]
    with state.db.write() as session:
        session.add_all(events)
    return archive_response(format, f"{assignment}-submissions", entries, state.store, state.memory)
