"""What the pages show, read in a few queries per page.

Everything here is scoped to one course by its id, so a page can only show
what belongs to the course the viewer was checked against.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ngshare.db.models import Assignment, Course, Member, Release, Submission
from ngshare.domain.filesets import ListedFile, list_files
from ngshare.domain.policies import (
    effective_state,
    extensions_of,
    own_work_readable,
    show,
    show_duration,
    visible_to_students,
)
from ngshare.domain.roster import members
from ngshare.domain.status import feedback_news, student_statuses
from ngshare.domain.submissions import submissions_query
from ngshare.errors import NotFound
from ngshare.timestamps import now


@dataclass
class CourseRow:
    name: str
    created_at: datetime
    role: str | None = None
    instructors: list[str] = field(default_factory=list)
    students: int = 0
    assignments: int = 0


def courses_overview(session: Session, names: list[str] | None, viewer: str) -> list[CourseRow]:
    """Courses (all, or those named) with instructors and counts, and the viewer's role."""
    query = select(Course).order_by(Course.name)
    if names is not None:
        query = query.where(Course.name.in_(names))
    courses = {c.id: CourseRow(c.name, c.created_at) for c in session.scalars(query)}
    if not courses:
        return []
    ids = list(courses)
    for course_id, username, role in session.execute(
        select(Member.course_id, Member.username, Member.role)
        .where(Member.course_id.in_(ids))
        .order_by(Member.username)
    ):
        row = courses[course_id]
        if role == "instructor":
            row.instructors.append(username)
        else:
            row.students += 1
        if username == viewer:
            row.role = role
    for course_id, count in session.execute(
        select(Assignment.course_id, func.count())
        .where(Assignment.course_id.in_(ids), Assignment.current_release_id.is_not(None))
        .group_by(Assignment.course_id)
    ):
        courses[course_id].assignments = count
    return list(courses.values())


@dataclass
class AssignmentRow:
    name: str
    released: bool
    version: int | None = None
    released_at: datetime | None = None
    versions: list[tuple[int, datetime]] = field(default_factory=list)
    students: int = 0  # for instructors: students on the roster who submitted
    others: int = 0  # submitters no longer on the roster
    submissions: int = 0
    # for a student: their own submissions
    latest: datetime | None = None
    feedback: bool = False
    # course policies (docs/policies.md)
    state: str = "released"
    due: str | None = None
    me: dict = field(default_factory=dict)  # a student's standing (domain.status)


def course_assignments(
    session: Session, course_id: int, student: str | None = None
) -> list[AssignmentRow]:
    """Assignments with their versions and submission counts.

    For a student (`student` given): released assignments only, and the
    counts are of their own submissions.
    """
    query = select(Assignment).where(Assignment.course_id == course_id).order_by(Assignment.id)
    if student is not None:
        query = query.where(Assignment.current_release_id.is_not(None))
    moment = now()
    assignments = list(session.scalars(query))
    if student is not None:
        assignments = [a for a in assignments if visible_to_students(a, moment)]
    rows = {
        a.id: AssignmentRow(
            a.name,
            a.current_release_id is not None,
            state=effective_state(a, moment),
            due=show(a.due_at, a.timezone),
        )
        for a in assignments
    }
    if not rows:
        return []
    if student is not None:
        course = session.scalar(select(Course.name).where(Course.id == course_id)) or ""
        for assignment_id, status in student_statuses(
            session, course, assignments, student, moment
        ).items():
            rows[assignment_id].me = status
    current = {a.id: a.current_release_id for a in assignments}
    for release in session.scalars(
        select(Release).where(Release.assignment_id.in_(rows)).order_by(Release.version)
    ):
        row = rows[release.assignment_id]
        row.versions.append((release.version, release.created_at))
        if release.id == current[release.assignment_id]:
            row.version, row.released_at = release.version, release.created_at
    counts = select(
        Submission.assignment_id,
        func.count(func.distinct(Submission.student)),
        func.count(),
        func.max(Submission.timestamp),
    ).where(Submission.assignment_id.in_(rows))
    if student is not None:
        counts = counts.where(Submission.student == student)
    for assignment_id, students, total, latest in session.execute(
        counts.group_by(Submission.assignment_id)
    ):
        row = rows[assignment_id]
        row.students, row.submissions, row.latest = students, total, latest
    if student is None:
        for row in rows.values():
            row.others, row.students = row.students, 0
        on_roster = select(Member.username).where(
            Member.course_id == course_id, Member.role == "student"
        )
        for assignment_id, students in session.execute(
            select(Submission.assignment_id, func.count(func.distinct(Submission.student)))
            .where(Submission.assignment_id.in_(rows), Submission.student.in_(on_roster))
            .group_by(Submission.assignment_id)
        ):
            row = rows[assignment_id]
            row.others -= students
            row.students = students
    if student is not None:
        for assignment_id in _with_feedback_on_latest(session, list(rows), student):
            rows[assignment_id].feedback = True
    return list(rows.values())


def _with_feedback_on_latest(session: Session, assignment_ids: list[int], student: str) -> set[int]:
    found = set()
    for assignment_id in assignment_ids:
        query = submissions_query(assignment_id).where(Submission.student == student)
        rows = session.execute(query).all()
        if rows and rows[-1][3] is not None:
            found.add(assignment_id)
    return found


def find_assignment(
    session: Session, course_id: int, name: str, released_only: bool, fetchable: bool = False
) -> Assignment:
    """The assignment; withdrawn ones only for instructors. 404 `Assignment not found`.

    `released_only` (a student): not a draft nor before its scheduled time (their own
    work stays reachable when it is archived); with `fetchable`, not archived either."""
    query = select(Assignment).where(Assignment.course_id == course_id, Assignment.name == name)
    if released_only:
        query = query.where(Assignment.current_release_id.is_not(None))
    row = session.scalar(query)
    if row is not None and released_only:
        moment = now()
        visible = visible_to_students if fetchable else own_work_readable
        if not visible(row, moment):
            row = None
    if row is None:
        raise NotFound("Assignment not found")
    return row


@dataclass
class PolicyView:
    """An assignment's policies in words, for its page."""

    state: str
    due: str | None
    late: str
    limit: int | None
    solutions: str
    has_solutions: bool
    visible_at: datetime | None
    extensions: dict[str, str]


def policy_view(session: Session, assignment: Assignment) -> PolicyView:
    late = assignment.late_window_seconds
    if assignment.due_at is None:
        late_words = "—"
    elif late is None:
        late_words = "accepted (marked late)"
    elif late == 0:
        late_words = "not accepted"
    else:
        late_words = f"accepted for {show_duration(late)} after the deadline"
    solutions = {"none": "not released", "all": "released", "after_due": "after the deadline"}
    return PolicyView(
        state=effective_state(assignment, now()),
        due=show(assignment.due_at, assignment.timezone),
        late=late_words,
        limit=assignment.max_submissions,
        solutions=solutions.get(assignment.solutions, assignment.solutions),
        has_solutions=assignment.solutions_fileset_id is not None,
        visible_at=assignment.visible_at,
        extensions={
            name: show(e.due_at, assignment.timezone) or ""
            for name, e in extensions_of(session, assignment.id).items()
        },
    )


def current_version(session: Session, assignment: Assignment) -> Release | None:
    if assignment.current_release_id is None:
        return None
    return session.get(Release, assignment.current_release_id)


@dataclass
class SubmissionView:
    id: int
    student: str
    submitted_at: datetime
    release_version: int | None
    file_count: int
    total_size: int
    feedback_at: datetime | None
    feedback_files: int
    files: list[ListedFile] = field(default_factory=list)
    on_time: bool | None = None
    late_by: str | None = None
    feedback_news: str | None = None  # new, updated, seen (for the student's own view)

    @property
    def timing(self) -> str:
        if self.on_time is None:
            return "—"
        return "on time" if self.on_time else f"late by {self.late_by}"


def _view(row, files: list[ListedFile] | None = None) -> SubmissionView:
    submission, version, fileset, feedback, feedback_set = row
    late_by = None
    if submission.on_time is False and submission.deadline is not None:
        late_by = show_duration((submission.timestamp - submission.deadline).total_seconds())
    return SubmissionView(
        on_time=submission.on_time,
        late_by=late_by,
        id=submission.id,
        student=submission.student,
        submitted_at=submission.timestamp,
        release_version=version,
        file_count=fileset.file_count,
        total_size=fileset.total_size,
        feedback_at=feedback.created_at if feedback is not None else None,
        feedback_files=feedback_set.file_count if feedback_set is not None else 0,
        files=files or [],
    )


def student_submissions(
    session: Session, assignment_id: int, student: str, course: str | None = None
) -> list[SubmissionView]:
    """One student's submissions, newest first, with their files; with `course`, also
    whether their feedback is new to the student (see `status.feedback_news`)."""
    rows = session.execute(
        submissions_query(assignment_id).where(Submission.student == student)
    ).all()
    views = [_view(r, list_files(session, r[0].fileset_id)) for r in reversed(rows)]
    if course is not None:
        news = feedback_news(session, course, student, [v.id for v in views])
        for view in views:
            view.feedback_news = news.get(view.id)
    return views


@dataclass
class StudentRow:
    username: str
    first_name: str | None = None
    last_name: str | None = None
    on_roster: bool = True
    count: int = 0
    latest: SubmissionView | None = None
    earlier_feedback: bool = False

    @property
    def feedback_state(self) -> str:
        if self.latest is None:
            return "none"
        if self.latest.feedback_at is not None:
            return "returned"
        return "earlier" if self.earlier_feedback else "none"


def assignment_students(session: Session, course_id: int, assignment_id: int) -> list[StudentRow]:
    """Every student on the roster and everyone who submitted, by user name."""
    table = {
        m.username: StudentRow(m.username, m.first_name, m.last_name)
        for m in members(session, course_id, "student")
    }
    for row in session.execute(submissions_query(assignment_id)):
        name = row[0].student
        entry = table.get(name)
        if entry is None:
            entry = table[name] = StudentRow(name, on_roster=False)
        if entry.latest is not None and entry.latest.feedback_at is not None:
            entry.earlier_feedback = True
        entry.count += 1
        entry.latest = _view(row)  # rows come oldest first
    return sorted(table.values(), key=lambda r: r.username)


def find_submission(
    session: Session, assignment_id: int, submission_id: int, student: str | None
) -> SubmissionView:
    """A submission of this assignment (of `student`, when given); 404 otherwise."""
    query = submissions_query(assignment_id).where(Submission.id == submission_id)
    if student is not None:
        query = query.where(Submission.student == student)
    row = session.execute(query).first()
    if row is None:
        raise NotFound("Submission not found")
    return _view(row, list_files(session, row[0].fileset_id))


def feedback_files(session: Session, assignment_id: int, submission_id: int) -> list[ListedFile]:
    row = session.execute(
        submissions_query(assignment_id).where(Submission.id == submission_id)
    ).first()
    if row is None or row[3] is None:
        raise NotFound("No feedback for this submission")
    return list_files(session, row[3].fileset_id)
