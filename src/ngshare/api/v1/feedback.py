"""v1 routes for feedback on one submission: upload (replacing) and download."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, StreamingResponse
from sqlalchemy import select

from ngshare.api.docs import form, query
from ngshare.api.origin import V1Origin
from ngshare.api.v1.deps import CourseInstructor, InstructorOrSelf, State, V1Args
from ngshare.api.v1.responses import ok, tree_response
from ngshare.db.models import Feedback
from ngshare.domain.feedback import (
    current_feedback,
    one_release_at_a_time,
    record_release,
    replacement_growth,
    set_feedback,
)
from ngshare.domain.filesets import (
    commit_staged,
    list_files,
    with_md5,
)
from ngshare.domain.lookup import (
    find_submission,
    require_student,
    visible_assignment,
)
from ngshare.domain.manifests import check_quota
from ngshare.timestamps import format_v1, parse_v1

router = APIRouter(tags=["v1: feedback"])


@router.post("/feedback/{course}/{assignment}/{student}", openapi_extra=form("timestamp", "files"))
def upload_feedback(
    assignment: str,
    student: str,
    ctx: CourseInstructor,
    args: V1Args,
    state: State,
    origin: V1Origin,
) -> JSONResponse:
    """Attach feedback to the submission at `timestamp`, replacing any earlier feedback."""
    with state.db.read() as session:
        row = visible_assignment(session, ctx.course_id, assignment, ctx.is_instructor)
        require_student(session, ctx.course_id, row.id, student)
        stamp = parse_v1(args.required("timestamp", "Please supply timestamp"))
        submission_id = find_submission(session, row.id, student, stamp).id
    staged = commit_staged(args.staged_files())
    with one_release_at_a_time(), state.db.write() as session:
        old = current_feedback(session, submission_id)
        check_quota(session, ctx.course_id, replacement_growth(old, staged), state.limits)
        feedback = set_feedback(session, ctx.course_id, submission_id, staged, ctx.user.name)
        record_release(session, origin, ctx.course, ctx.user.name, assignment, student, feedback)
    return ok()


@router.get(
    "/feedback/{course}/{assignment}/{student}", openapi_extra=query("list_only", "timestamp")
)
def download_feedback(
    assignment: str,
    student: str,
    ctx: InstructorOrSelf,
    args: V1Args,
    state: State,
    origin: V1Origin,
) -> StreamingResponse:
    """Feedback files for the submission at `timestamp` (default: the latest); may be empty."""
    with state.db.read() as session:
        row = visible_assignment(session, ctx.course_id, assignment, ctx.is_instructor)
        require_student(session, ctx.course_id, row.id, student)
        stamp = parse_v1(args["timestamp"]) if args.get("timestamp") else None
        found = find_submission(session, row.id, student, stamp)
        fileset_id = session.scalar(
            select(Feedback.fileset_id).where(Feedback.submission_id == found.id)
        )
        files = list_files(session, fileset_id) if fileset_id is not None else []
        extra = {"timestamp": format_v1(found.timestamp)}
        submission_id = found.id
    files = with_md5(state.db, state.store, files)
    if files and not args.flag("list_only"):
        origin.record(
            state.db,
            ctx.course,
            "feedback_fetch",
            ctx.user.name,
            assignment=assignment,
            student=student,
            submission_id=submission_id,
        )
    return tree_response(state, files, args.flag("list_only"), extra)
