"""v2 feedback: on one submission replace, read, withdraw; on many, release at once.

nbgrader's release_feedback hands back a whole class's feedback in one
command. One request per student costs a write transaction (and its fsync) and
an answer each; the bulk route commits every set of a request in one
transaction, all or none.
"""

from __future__ import annotations

import anyio
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from ngshare.api.origin import V2Origin
from ngshare.api.permissions import CourseContext
from ngshare.api.v2.assignments import manifest_files
from ngshare.api.v2.bundles import (
    MANIFEST_BODY,
    Trees,
    checked_commit,
    checked_manifest,
    commit_body_doc,
)
from ngshare.api.v2.deps import CourseInstructor, InstructorOrSelf, State
from ngshare.api.v2.inline import INLINE_DOC, manifest_answer
from ngshare.api.v2.schemas import (
    BulkFeedback,
    BulkFeedbackOut,
    FeedbackOut,
    FeedbackReleased,
    FeedbackSet,
    ManifestFile,
)
from ngshare.api.v2.submissions import find_submission_row
from ngshare.domain.audit import Origin
from ngshare.domain.feedback import (
    check_owners,
    current_feedback,
    one_release_at_a_time,
    record_release,
    release_feedback,
    remove_feedback,
    staged_sets,
)
from ngshare.domain.filesets import list_files
from ngshare.domain.lookup import visible_assignment
from ngshare.domain.manifests import check_manifest, check_quota
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
    with one_release_at_a_time(), state.db.write() as session:
        feedback, changed, growth = release_feedback(
            session, ctx.course_id, submission_id, staged, ctx.user.name
        )
        if changed:
            check_quota(session, ctx.course_id, growth, state.limits)
            record_release(
                session, origin, ctx.course, ctx.user.name, assignment, student, feedback
            )
        return FeedbackOut(submission_id=submission_id, updated_at=feedback.created_at, files=files)


BULK_PATH = "/courses/{course}/assignments/{assignment}/feedback"


@router.post(BULK_PATH, response_model=BulkFeedbackOut, openapi_extra=commit_body_doc(BulkFeedback))
async def release_many(
    assignment: str, request: Request, ctx: CourseInstructor, state: State, origin: V2Origin
) -> BulkFeedbackOut:
    """Release the feedback of many submissions at once, all or none.

    The body is `{"feedback": [{"student", "submission_id", "files"}, ...]}`
    (JSON), or a bundle whose first line is that object with `blobs` added.
    Each set replaces its submission's feedback; a set equal to the feedback
    already there changes nothing (`changed: false`). The sets share one
    upload's limits on file count and total size.
    """
    body = await checked_commit(
        request, state, ctx.user.name, BulkFeedback, _trees, _owned, state, ctx, assignment
    )
    return await anyio.to_thread.run_sync(
        _replace_many, state, ctx, origin, assignment, body.head.feedback
    )


def _trees(head: BulkFeedback) -> Trees:
    return [(_label(item), item.files) for item in head.feedback]


def _label(item: FeedbackSet) -> str:
    return f"Feedback for {item.student}/{item.submission_id}"


def _owned(state: AppState, ctx: CourseContext, assignment: str, sets: BulkFeedback) -> None:
    """Refuse unless every set names a submission of the assignment by its student."""
    with state.db.read() as session:
        row = visible_assignment(session, ctx.course_id, assignment, True)
        check_owners(session, row.id, [(s.student, s.submission_id) for s in sets.feedback])


def _replace_many(
    state: AppState, ctx: CourseContext, origin: Origin, assignment: str, sets: list[FeedbackSet]
) -> BulkFeedbackOut:
    staged = staged_sets([(_label(s), s.files) for s in sets], state.limits, state.store)
    released = []
    with one_release_at_a_time(), state.db.write() as session:
        row = visible_assignment(session, ctx.course_id, assignment, True)
        # again, inside the transaction: a submission may have gone since the precheck
        check_owners(session, row.id, [(s.student, s.submission_id) for s in sets])
        growth = 0
        for item, files in zip(sets, staged, strict=True):
            feedback, changed, grew = release_feedback(
                session, ctx.course_id, item.submission_id, files, ctx.user.name
            )
            growth += grew
            if changed:
                record_release(
                    session, origin, ctx.course, ctx.user.name, assignment, item.student, feedback
                )
            released.append(
                FeedbackReleased(
                    student=item.student,
                    submission_id=item.submission_id,
                    updated_at=feedback.created_at,
                    changed=changed,
                )
            )
        check_quota(session, ctx.course_id, growth, state.limits)  # a refusal rolls back all
    return BulkFeedbackOut(feedback=released)


@router.get(PATH, response_model=FeedbackOut, responses=INLINE_DOC)
def get_feedback(
    assignment: str,
    student: str,
    submission_id: int,
    request: Request,
    response: Response,
    ctx: InstructorOrSelf,
    state: State,
) -> FeedbackOut | StreamingResponse:
    """The feedback's manifest; with `Accept: application/vnd.ngshare.bundle`, followed by
    its small files' bytes (`ngshare.api.v2.inline`)."""
    with state.db.read() as session:
        found = find_submission_row(session, ctx, assignment, student, submission_id)
        feedback = found[3]
        if feedback is None:
            raise NotFound("No feedback for this submission")
        files = manifest_files(list_files(session, feedback.fileset_id))
    answer = FeedbackOut(submission_id=submission_id, updated_at=feedback.created_at, files=files)
    return manifest_answer(request, response, state, answer, files)


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
