"""An assignment's page (every student for instructors, your own work for students) and downloads.

Downloads are archives (zip or tar) streamed with the same functions as the
v2 API, under the pages' own login: a submission or its feedback for its
student or the course's instructors, every newest submission for
instructors, the released files for every member.
"""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, StreamingResponse
from sqlalchemy import select

from ngshare.api.v2.transfer import archive_response
from ngshare.db.models import Release
from ngshare.domain.archives import ArchiveEntry
from ngshare.domain.audit import Origin, remote_address
from ngshare.domain.feedback import current_feedback, remove_feedback
from ngshare.domain.filesets import list_files
from ngshare.domain.policies import PolicyRefused, extension_of, solutions_open
from ngshare.domain.status import student_statuses
from ngshare.domain.submissions import collect_entries
from ngshare.errors import NotFound
from ngshare.timestamps import now
from ngshare.web.pages import (
    CourseInstructor,
    CourseMember,
    Form,
    PageRoute,
    State,
    page_url,
    redirect,
    render,
)
from ngshare.web.queries import (
    assignment_students,
    current_version,
    feedback_files,
    find_assignment,
    find_submission,
    policy_view,
    student_submissions,
)

router = APIRouter(route_class=PageRoute)

BASE = "/ui/courses/{course}/assignments/{assignment}"
FORMAT = Query("zip", pattern="^(zip|tar)$", description="zip or tar")


@router.get(BASE)
def assignment_page(
    assignment: str, request: Request, page: CourseMember, state: State
) -> HTMLResponse:
    with state.db.read() as session:
        row = find_assignment(session, page.course_id, assignment, not page.is_instructor)
        release = current_version(session, row)
        versions = list(
            session.execute(
                select(Release.version, Release.created_at, Release.created_by)
                .where(Release.assignment_id == row.id)
                .order_by(Release.version)
            )
        )
        policy = policy_view(session, row)
        me: dict = {}
        if page.is_instructor:
            students = assignment_students(session, page.course_id, row.id)
            mine = []
        else:
            students = []
            mine = student_submissions(session, row.id, page.viewer.name, page.course)
            me = student_statuses(session, page.course, [row], page.viewer.name, now())[row.id]
    context = {
        "page": page,
        "assignment": assignment,
        "release": release,
        "versions": versions,
        "policy": policy,
        "me": me,
        "tab": "assignments",
    }
    if page.is_instructor:
        submitted = sum(1 for s in students if s.count)
        return render(
            request,
            "assignment.html",
            page.viewer,
            title=f"{assignment} in {page.course}",
            students=students,
            submitted=submitted,
            **context,
        )
    return render(
        request,
        "assignment_student.html",
        page.viewer,
        title=f"{assignment} in {page.course}",
        submissions=mine,
        **context,
    )


@router.get(BASE + "/student")
def student_history(
    assignment: str, request: Request, page: CourseInstructor, state: State, name: str
) -> HTMLResponse:
    """Every submission of one student, with files and feedback."""
    with state.db.read() as session:
        row = find_assignment(session, page.course_id, assignment, False)
        submissions = student_submissions(session, row.id, name)
    if not submissions:
        raise NotFound("This student has no submissions for this assignment")
    return render(
        request,
        "history.html",
        page.viewer,
        title=f"{name}: submissions of {assignment}",
        page=page,
        assignment=assignment,
        student=name,
        submissions=submissions,
        tab="assignments",
    )


def _own_submission(session, page, assignment: str, submission_id: int):
    """A submission of this course's assignment: any for instructors, one's own for students."""
    row = find_assignment(session, page.course_id, assignment, not page.is_instructor)
    student = None if page.is_instructor else page.viewer.name
    return row, find_submission(session, row.id, submission_id, student)


@router.get(BASE + "/submissions/{submission_id}/download")
def download_submission(
    assignment: str, submission_id: int, page: CourseMember, state: State, format: str = FORMAT
) -> StreamingResponse:
    with state.db.read() as session:
        _row, found = _own_submission(session, page, assignment, submission_id)
    entries = [
        ArchiveEntry(f"{found.student}/{f.path}", f.sha256, f.size, f.executable)
        for f in found.files
    ]
    stamp = found.submitted_at.strftime("%Y%m%dT%H%M%SZ")
    return archive_response(
        format, f"{assignment}-{found.student}-{stamp}", entries, state.store, state.memory
    )


@router.get(BASE + "/submissions/{submission_id}/feedback")
def download_feedback(
    assignment: str,
    submission_id: int,
    request: Request,
    page: CourseMember,
    state: State,
    format: str = FORMAT,
) -> StreamingResponse:
    with state.db.read() as session:
        row, found = _own_submission(session, page, assignment, submission_id)
        files = feedback_files(session, row.id, found.id)
    if found.student == page.viewer.name:  # the student has seen it (feedback news)
        origin = _origin(request)
        origin.record(
            state.db,
            page.course,
            "feedback_fetch",
            page.viewer.name,
            assignment=assignment,
            student=found.student,
            submission_id=found.id,
        )
    entries = [
        ArchiveEntry(f"{found.student}/{f.path}", f.sha256, f.size, f.executable) for f in files
    ]
    name = f"{assignment}-{found.student}-feedback"
    return archive_response(format, name, entries, state.store, state.memory)


@router.get(BASE + "/collect")
def download_all(
    assignment: str, page: CourseInstructor, state: State, format: str = FORMAT
) -> StreamingResponse:
    """Every student's newest submission, `<student>/<files>`, after `submissions.json`."""
    with state.db.read() as session:
        row = find_assignment(session, page.course_id, assignment, False)
        entries = collect_entries(session, row.id)
    return archive_response(format, f"{assignment}-submissions", entries, state.store, state.memory)


@router.get(BASE + "/release")
def download_release(
    assignment: str, page: CourseMember, state: State, format: str = FORMAT
) -> StreamingResponse:
    """The files of the current release, under `<assignment>/`."""
    with state.db.read() as session:
        row = find_assignment(session, page.course_id, assignment, True, fetchable=True)
        release = current_version(session, row)
        if release is None:
            raise NotFound("Assignment not found")
        files = list_files(session, release.fileset_id)
    entries = [
        ArchiveEntry(f"{assignment}/{f.path}", f.sha256, f.size, f.executable) for f in files
    ]
    return archive_response(
        format, f"{assignment}-v{release.version}", entries, state.store, state.memory
    )


@router.get(BASE + "/solutions")
def download_solutions(
    assignment: str, request: Request, page: CourseMember, state: State, format: str = FORMAT
) -> StreamingResponse:
    """The solutions, for instructors; for students once the `solutions` setting allows."""
    with state.db.read() as session:
        row = find_assignment(session, page.course_id, assignment, not page.is_instructor)
        if row.solutions_fileset_id is None:
            raise NotFound(f"No solutions for {assignment}")
        if not page.is_instructor:
            deadline = extension_of(session, row.id, page.viewer.name) or row.due_at
            if not solutions_open(row, deadline, now()):
                raise PolicyRefused(
                    f"The solutions of {assignment} are not released to you yet",
                    reason="solutions_not_released",
                )
        files = list_files(session, row.solutions_fileset_id)
    if not page.is_instructor:
        _origin(request).record(
            state.db, page.course, "solutions_fetch", page.viewer.name, assignment=assignment
        )
    entries = [
        ArchiveEntry(f"{assignment}-solutions/{f.path}", f.sha256, f.size, f.executable)
        for f in files
    ]
    return archive_response(format, f"{assignment}-solutions", entries, state.store, state.memory)


def _origin(request: Request) -> Origin:
    host = request.client.host if request.client else None
    return Origin(remote_address(request.headers.get("x-forwarded-for"), host), "web")


@router.post(BASE + "/submissions/{submission_id}/feedback/withdraw")
def withdraw_feedback(
    assignment: str,
    submission_id: int,
    request: Request,
    page: CourseInstructor,
    form: Form,
    state: State,
) -> RedirectResponse:
    """Withdraw the feedback released on one submission (as v2 DELETE .../feedback)."""
    with state.db.write() as session:
        _row, found = _own_submission(session, page, assignment, submission_id)
        back = page_url(
            state, "courses", page.course, "assignments", assignment, "student", name=found.student
        )
        old = current_feedback(session, found.id)
        if old is None:
            return redirect(request, back, "There is no feedback on that submission.", kind="error")
        remove_feedback(session, old)
        _origin(request).record(
            session,
            page.course,
            "feedback_withdraw",
            page.viewer.name,
            assignment=assignment,
            student=found.student,
            submission_id=found.id,
        )
    return redirect(request, back, f"Feedback withdrawn from {found.student}'s submission.")
