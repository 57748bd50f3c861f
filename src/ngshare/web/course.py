"""A course's page (assignments) and its roster: add, edit, remove, CSV upload, instructors."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from ngshare.api.permissions import check_name
from ngshare.db.models import Member
from ngshare.domain import roster
from ngshare.domain.lookup import member
from ngshare.domain.manifests import course_usage
from ngshare.domain.roster_csv import decode_roster, parse_roster
from ngshare.errors import BadRequest, NgshareError, NotFound
from ngshare.web.pages import (
    CourseAdmin,
    CourseInstructor,
    CourseMember,
    CoursePage,
    Form,
    PageRoute,
    State,
    file_field,
    page_url,
    redirect,
    render,
    text_field,
)
from ngshare.web.queries import course_assignments

router = APIRouter(route_class=PageRoute)

MAX_CSV_BYTES = 4 * 2**20
NAME_FIELDS = [field for field, _label in roster.NAME_FIELDS]


@router.get("/ui/courses/{course}")
def course_home(request: Request, page: CourseMember, state: State) -> HTMLResponse:
    with state.db.read() as session:
        stored = course_usage(session, page.course_id) if page.is_instructor else None
        if page.is_instructor:
            rows = course_assignments(session, page.course_id)
            students = len(roster.members(session, page.course_id, "student"))
        else:
            rows = course_assignments(session, page.course_id, student=page.viewer.name)
            students = 0
    template = "course.html" if page.is_instructor else "course_student.html"
    return render(
        request,
        template,
        page.viewer,
        title=page.course,
        page=page,
        assignments=rows,
        students=students,
        stored=stored,
        quota=state.limits.course_quota_bytes,
        tab="assignments",
    )


def _roster_url(state, page: CoursePage) -> str:
    """Where a roster form returns to: the top, so that its message is in view."""
    return page_url(state, "courses", page.course, "roster")


@router.get("/ui/courses/{course}/roster")
def roster_page(request: Request, page: CourseInstructor, state: State) -> HTMLResponse:
    with state.db.read() as session:
        instructors = roster.members(session, page.course_id, "instructor")
        students = roster.members(session, page.course_id, "student")
    return render(
        request,
        "roster.html",
        page.viewer,
        title=f"Roster of {page.course}",
        page=page,
        instructors=instructors,
        students=students,
        tab="roster",
    )


def _names(form) -> dict[str, str]:
    return {field: text_field(form, field) for field in NAME_FIELDS}


@router.post("/ui/courses/{course}/students/add")
def add_student(request: Request, page: CourseInstructor, form: Form, state: State):
    username = text_field(form, "username")
    back = _roster_url(state, page)
    try:
        check_name(username, "user")
        names = _names(form)
        added = state.db.write_retrying(
            lambda s: roster.set_student(s, page.course_id, username, names)
        )
    except NgshareError as exc:
        return redirect(request, back, f"Student {username} not added: {exc.message}", kind="error")
    verb = "added" if added else "already on the roster; names updated"
    return redirect(request, back, f"Student {username} {verb}.")


def _student(state, page: CoursePage, username: str) -> Member:
    with state.db.read() as session:
        row = member(session, page.course_id, username, "student")
    if row is None:
        raise NotFound("Student not found")
    return row


@router.get("/ui/courses/{course}/students/edit")
def edit_student_form(
    request: Request, page: CourseInstructor, state: State, username: str
) -> HTMLResponse:
    student = _student(state, page, username)
    return render(
        request,
        "student_edit.html",
        page.viewer,
        title=f"Edit student {username}",
        page=page,
        student=student,
        tab="roster",
    )


@router.post("/ui/courses/{course}/students/edit")
def edit_student(
    request: Request, page: CourseInstructor, form: Form, state: State
) -> RedirectResponse:
    username = text_field(form, "username")
    _student(state, page, username)
    names = _names(form)
    state.db.write_retrying(lambda s: roster.set_student(s, page.course_id, username, names))
    return redirect(request, _roster_url(state, page), f"Student {username} updated.")


@router.post("/ui/courses/{course}/students/remove")
def remove_student(
    request: Request, page: CourseInstructor, form: Form, state: State
) -> RedirectResponse:
    username = text_field(form, "username")
    back = _roster_url(state, page)
    try:
        with state.db.write() as session:
            roster.remove(session, page.course_id, username, "student")
    except NotFound:
        return redirect(request, back, f"{username} is not a student here.", kind="error")
    return redirect(
        request, back, f"Student {username} removed from the roster; their submissions are kept."
    )


@router.post("/ui/courses/{course}/students/upload")
async def upload_roster(
    request: Request, page: CourseInstructor, form: Form, state: State
) -> RedirectResponse:
    back = _roster_url(state, page)
    upload = file_field(form, "roster")
    if upload is None:
        return redirect(request, back, "Choose a CSV file to upload.", kind="error")
    data = await upload.read(MAX_CSV_BYTES + 1)
    label = upload.filename or "roster"
    if len(data) > MAX_CSV_BYTES:
        message = f"{label}: larger than {MAX_CSV_BYTES // 2**20} MB; nothing imported."
        return redirect(request, back, message, kind="error")
    try:
        parsed = parse_roster(decode_roster(data))
    except BadRequest as exc:
        return redirect(request, back, f"{label}: {exc.message}; nothing imported.", kind="error")
    report: list[list] = [[p.row, p.username, "skipped", p.problem] for p in parsed.problems]
    entries = []
    for row in parsed.rows:
        try:
            check_name(row.username, "user")
        except BadRequest:
            report.append([row.row, row.username, "skipped", "illegal user name"])
            continue
        entries.append(row)
    outcomes = await run_in_threadpool(_import, state, page, entries)
    for row, outcome in zip(entries, outcomes, strict=True):
        report.append([row.row, row.username, outcome.outcome, outcome.message or ""])
    report.sort(key=lambda r: r[0])
    counts = {k: sum(1 for r in report if r[2] == k) for k in ("added", "updated")}
    problems = len(report) - counts["added"] - counts["updated"]
    summary = (
        f"{label}: {counts['added']} added, {counts['updated']} updated, {problems} not imported."
    )
    return redirect(request, back, summary, kind="warning" if problems else "ok", report=report)


def _import(state, page: CoursePage, rows) -> list[roster.StudentOutcome]:
    entries = [r.as_v1() for r in rows]
    return state.db.write_retrying(lambda s: roster.set_students(s, page.course_id, entries))


# Instructors: admins only (as in the API)


@router.post("/ui/courses/{course}/instructors/add")
def add_instructor(
    request: Request, page: CourseAdmin, form: Form, state: State
) -> RedirectResponse:
    username = text_field(form, "username")
    back = _roster_url(state, page)
    try:
        check_name(username, "user")
        names = _names(form)
        added = state.db.write_retrying(
            lambda s: roster.set_instructor(s, page.course_id, username, names)
        )
    except NgshareError as exc:
        return redirect(
            request, back, f"Instructor {username} not added: {exc.message}", kind="error"
        )
    verb = "added" if added else "is now an instructor (names updated)"
    return redirect(request, back, f"Instructor {username} {verb}.")


@router.post("/ui/courses/{course}/instructors/remove")
def remove_instructor(
    request: Request, page: CourseAdmin, form: Form, state: State
) -> RedirectResponse:
    username = text_field(form, "username")
    back = _roster_url(state, page)
    try:
        with state.db.write() as session:
            roster.remove(session, page.course_id, username, "instructor")
    except NotFound:
        return redirect(request, back, f"{username} is not an instructor here.", kind="error")
    return redirect(request, back, f"Instructor {username} removed.")
