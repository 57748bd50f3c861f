"""v2 feedback on one submission: replace, read, withdraw."""

from __future__ import annotations

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ngshare.api.origin import V2Origin
from ngshare.api.permissions import CourseContext
from ngshare.api.v2.assignments import manifest_files
from ngshare.api.v2.bundles import MANIFEST_BODY, checked_manifest
from ngshare.api.v2.deps import CourseInstructor, InstructorOrSelf, State
from ngshare.api.v2.schemas import FeedbackOut, ManifestFile
from ngshare.api.v2.submissions import find_submission_row
from ngshare.domain.audit import Origin
from ngshare.domain.feedback import current_feedback, remove_feedback, set_feedback
from ngshare.domain.filesets import list_files, manifest_digest
from ngshare.domain.manifests import check_manifest
from ngshare.errors import NotFound
from ngshare.state import AppState

router = APIRouter(tags=["v2: feedback"])

PATH = "/courses/{course}/assignments/{assignment}/submissions/{student}/{submission_id}/feedback"


@router.put(PATH, response_model=FeedbackOut, openapi_extra=MANIFEST_BODY)
async def put_feedback(
    assignment: str,
    student: str,
    submission_id: int,
    request: Request,
    ctx: CourseInstructor,
    state: State,
    origin: V2Origin,
) -> FeedbackOut:
    """Set the feedback of a submission, replacing earlier feedback (same tree: no change).

    The body is the manifest (JSON) or a bundle with the files' bytes
    (`ngshare.api.v2.bundles`).
    """
    files = await checked_manifest(
        request, state, ctx.user.name,
        _find, state, ctx, assignment, student, submission_id,
    )  # fmt: skip
    return await anyio.to_thread.run_sync(
        _replace, state, ctx, origin, assignment, student, submission_id, files
    )


def _find(
    state: AppState, ctx: CourseContext, assignment: str, student: str, submission_id: int
) -> None:
    with state.db.read() as session:
        find_submission_row(session, ctx, assignment, student, submission_id)


def _replace(
    state: AppState,
    ctx: CourseContext,
    origin: Origin,
    assignment: str,
    student: str,
    submission_id: int,
    files: list[ManifestFile],
) -> FeedbackOut:
    staged = check_manifest(files, state.limits, state.store)
    with state.db.write() as session:
        old = current_feedback(session, submission_id)
        if old is not None and old.fileset.digest == manifest_digest(staged):
            return FeedbackOut(submission_id=submission_id, updated_at=old.created_at, files=files)
        new = set_feedback(session, ctx.course_id, submission_id, staged, ctx.user.name)
        origin.record(
            session,
            ctx.course,
            "feedback_release",
            ctx.user.name,
            assignment=assignment,
            student=student,
            submission_id=submission_id,
            digest=new.fileset.digest,
        )
        return FeedbackOut(submission_id=submission_id, updated_at=new.created_at, files=files)


@router.get(PATH, response_model=FeedbackOut)
def get_feedback(
    assignment: str, student: str, submission_id: int, ctx: InstructorOrSelf, state: State
) -> FeedbackOut:
    with state.db.read() as session:
        found = find_submission_row(session, ctx, assignment, student, submission_id)
        feedback = found[3]
        if feedback is None:
            raise NotFound("No feedback for this submission")
        files = manifest_files(list_files(session, feedback.fileset_id))
    return FeedbackOut(submission_id=submission_id, updated_at=feedback.created_at, files=files)


@router.delete(PATH)
def withdraw_feedback(
    assignment: str,
    student: str,
    submission_id: int,
    ctx: CourseInstructor,
    state: State,
    origin: V2Origin,
) -> JSONResponse:
    with state.db.write() as session:
        find_submission_row(session, ctx, assignment, student, submission_id)
        old = current_feedback(session, submission_id)
        if old is None:
            raise NotFound("No feedback for this submission")
        remove_feedback(session, old)
        origin.record(
            session,
            ctx.course,
            "feedback_withdraw",
            ctx.user.name,
            assignment=assignment,
            student=student,
            submission_id=submission_id,
        )
    return JSONResponse({"withdrawn": submission_id})
