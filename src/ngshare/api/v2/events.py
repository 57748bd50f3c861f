"""v2 audit history: read it (JSON or CSV), and report completed downloads.

A v2 client downloads a tree blob by blob, so only it knows when a fetch is
complete; it reports it here. The server checks that the reporter may read
what the report names, so a report is as trustworthy as the download itself.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy import bindparam, select

from ngshare.api.origin import V2Origin
from ngshare.api.v2.deps import CourseInstructor, CourseMember, State
from ngshare.db.models import Feedback, FileSet, Release, Submission
from ngshare.domain import audit
from ngshare.domain.lookup import visible_assignment
from ngshare.errors import NotFound, PermissionDenied

router = APIRouter(tags=["v2: audit history"])

MAX_EVENTS = 100_000


class Report(BaseModel):
    action: Literal["fetch", "collect", "download", "feedback_fetch"]
    assignment: str
    version: int | None = Field(None, description="Release version fetched (fetch)")
    student: str | None = Field(None, description="Whose submission (others)")
    submission_id: int | None = None


@router.post("/courses/{course}/events", status_code=201)
def report(body: Report, ctx: CourseMember, state: State, origin: V2Origin) -> JSONResponse:
    """Record a download the client completed (fetch, collect, download, feedback_fetch)."""
    with state.db.read() as session:
        instructor_view = ctx.is_instructor and body.action != "fetch"
        row = visible_assignment(session, ctx.course_id, body.assignment, instructor_view)
        fields: dict[str, object] = {"assignment": body.assignment}
        if body.action == "fetch":
            if body.version:
                which = {"assignment_id": row.id, "version": body.version}
                release = session.execute(_RELEASE_BY_VERSION, which).first()
            else:  # the current release
                which = {"assignment_id": row.id, "release_id": row.current_release_id}
                release = session.execute(_RELEASE_BY_ID, which).first()
            if release is None:
                raise NotFound(f"Assignment {body.assignment} has no such version")
            fields.update(version=release.version, digest=release.digest)
        else:
            submission = session.get(Submission, body.submission_id or 0)
            if submission is None or submission.assignment_id != row.id:
                raise NotFound("Submission not found")
            own = submission.student == ctx.user.name
            if not own and not ctx.is_instructor:
                raise PermissionDenied()
            if (
                body.action == "feedback_fetch"
                and session.scalar(
                    select(Feedback.id).where(Feedback.submission_id == submission.id)
                )
                is None
            ):
                raise NotFound("No feedback for this submission")
            fields.update(student=submission.student, submission_id=submission.id)
    origin.record(state.db, ctx.course, body.action, ctx.user.name, **fields)
    return JSONResponse({"recorded": body.action}, status_code=201)


# A fetched release's version and digest, in one row (each fetch report asks).
_RELEASE = select(Release.version, FileSet.digest).join(FileSet, FileSet.id == Release.fileset_id)
_RELEASE_BY_VERSION = _RELEASE.where(
    Release.assignment_id == bindparam("assignment_id"), Release.version == bindparam("version")
)
_RELEASE_BY_ID = _RELEASE.where(
    Release.assignment_id == bindparam("assignment_id"), Release.id == bindparam("release_id")
)


@router.get("/courses/{course}/events")
def history(
    ctx: CourseInstructor,
    state: State,
    assignment: str | None = None,
    student: str | None = None,
    action: str | None = None,
    format: Literal["json", "csv"] = Query("json", description="json or csv"),
) -> Response:
    """The course's history, oldest first, filtered; `format=csv` for a spreadsheet."""
    with state.db.read() as session:
        events = list(
            session.scalars(audit.query(ctx.course, assignment, student, action).limit(MAX_EVENTS))
        )
    if format == "csv":
        filename = f"{ctx.course}-history.csv".replace('"', "")
        return StreamingResponse(
            audit.csv_lines(events),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )
    rows = [audit.as_dict(event) for event in events]
    for row in rows:
        row["at"] = row["at"].isoformat()  # type: ignore[union-attr]
    return JSONResponse({"events": rows})
