"""The course's audit history as a page, and as CSV, for its instructors.

Answers questions such as "has this student fetched the assignment?" and
"when exactly did they submit?" without the command line.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, StreamingResponse

from ngshare.domain import audit
from ngshare.web.pages import CourseInstructor, PageRoute, State, render

router = APIRouter(route_class=PageRoute)

PAGE_LIMIT = 1000
CSV_LIMIT = 100_000


def _filters(assignment: str, student: str, action: str) -> dict[str, str]:
    given = {"assignment": assignment, "student": student, "action": action}
    return {key: value for key, value in given.items() if value}


@router.get("/ui/courses/{course}/activity")
def activity(
    request: Request,
    page: CourseInstructor,
    state: State,
    assignment: str = "",
    student: str = "",
    action: str = "",
) -> HTMLResponse:
    filters = _filters(assignment, student, action)
    with state.db.read() as session:
        query = audit.query(page.course, assignment, student, action).limit(PAGE_LIMIT + 1)
        events = list(session.scalars(query))
    return render(
        request,
        "activity.html",
        page.viewer,
        title=f"Activity in {page.course}",
        page=page,
        tab="activity",
        events=events[:PAGE_LIMIT],
        truncated=len(events) > PAGE_LIMIT,
        filters=filters,
        values={"assignment": assignment, "student": student, "action": action},
        actions=audit.ACTIONS,
    )


@router.get("/ui/courses/{course}/activity.csv")
def activity_csv(
    page: CourseInstructor, state: State, assignment: str = "", student: str = "", action: str = ""
) -> StreamingResponse:
    with state.db.read() as session:
        query = audit.query(page.course, assignment, student, action).limit(CSV_LIMIT)
        events = list(session.scalars(query))
    return StreamingResponse(
        audit.csv_lines(events),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="activity.csv"'},
    )
