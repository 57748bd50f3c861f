"""v1 routes for submissions: list, submit, download."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, StreamingResponse
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ngshare.api.docs import form, query
from ngshare.api.origin import V1Origin
from ngshare.api.v1.deps import (
    CourseInstructor,
    CourseMember,
    InstructorOrSelf,
    State,
    V1Args,
)
from ngshare.api.v1.responses import ok, tree_response
from ngshare.db.models import Submission
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
from ngshare.domain.submissions import Submitter, add_submission, precheck_submission
from ngshare.errors import Conflict
from ngshare.timestamps import format_v1, parse_v1

router = APIRouter(tags=["v1: submissions"])

SUBMIT_ATTEMPTS = 5


def _listing(rows) -> list[dict[str, str]]:
    return [{"student_id": r.student, "timestamp": format_v1(r.timestamp)} for r in rows]


@router.get("/submissions/{course}/{assignment}")
def list_submissions(assignment: str, ctx: CourseInstructor, state: State) -> JSONResponse:
    with state.db.read() as session:
        row = visible_assignment(session, ctx.course_id, assignment, ctx.is_instructor)
        rows = session.execute(
            select(Submission.student, Submission.timestamp)
            .where(Submission.assignment_id == row.id)
            .order_by(Submission.timestamp, Submission.student)
        )
        return ok(submissions=_listing(rows))


@router.get("/submissions/{course}/{assignment}/{student}")
def list_student_submissions(
    assignment: str, student: str, ctx: InstructorOrSelf, state: State
) -> JSONResponse:
    with state.db.read() as session:
        row = visible_assignment(session, ctx.course_id, assignment, ctx.is_instructor)
        require_student(session, ctx.course_id, row.id, student)
        rows = session.execute(
            select(Submission.student, Submission.timestamp)
            .where(Submission.assignment_id == row.id, Submission.student == student)
            .order_by(Submission.timestamp)
        )
        return ok(submissions=_listing(rows))


@router.post("/submission/{course}/{assignment}", openapi_extra=form("files"))
def submit(
    assignment: str, ctx: CourseMember, args: V1Args, state: State, origin: V1Origin
) -> JSONResponse:
    """Store a new submission by the caller, stamped strictly after their previous one."""
    who = Submitter(ctx.user.name, ctx.course_id, ctx.course, ctx.is_instructor)
    with state.db.read() as session:
        precheck_submission(session, who, assignment)
    staged = commit_staged(args.staged_files())
    size = sum(f.digest.size for f in staged)
    for _attempt in range(SUBMIT_ATTEMPTS):
        try:
            with state.db.write() as session:
                check_quota(session, who.course_id, size, state.limits)
                added = add_submission(session, who, assignment, staged, origin)
            return ok(timestamp=format_v1(added.submission.timestamp))
        except IntegrityError:
            continue  # a simultaneous submission by the same student took this stamp
    raise Conflict("Another submission is in progress; try again")


@router.get(
    "/submission/{course}/{assignment}/{student}", openapi_extra=query("list_only", "timestamp")
)
def download_submission(
    assignment: str,
    student: str,
    ctx: InstructorOrSelf,
    args: V1Args,
    state: State,
    origin: V1Origin,
) -> StreamingResponse:
    """A submission's files: the latest, or the one at `timestamp`."""
    with state.db.read() as session:
        row = visible_assignment(session, ctx.course_id, assignment, ctx.is_instructor)
        require_student(session, ctx.course_id, row.id, student)
        stamp = parse_v1(args["timestamp"]) if args.get("timestamp") else None
        found = find_submission(session, row.id, student, stamp)
        files = list_files(session, found.fileset_id)
        extra = {"timestamp": format_v1(found.timestamp)}
        submission_id, digest = found.id, found.fileset.digest
    files = with_md5(state.db, state.store, files)
    if not args.flag("list_only"):
        action = "download" if ctx.user.name == student else "collect"
        origin.record(
            state.db,
            ctx.course,
            action,
            ctx.user.name,
            assignment=assignment,
            student=student,
            submission_id=submission_id,
            digest=digest,
        )
    return tree_response(state, files, args.flag("list_only"), extra)
