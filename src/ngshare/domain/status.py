"""A student's standing in each assignment: deadline, status, feedback news, solutions.

Shared by the v2 API (assignment list and settings) and the web pages, so
both say the same thing. A handful of queries per call, whatever the number
of assignments.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ngshare.db.models import Assignment, Event, Extension, Feedback, Release, Submission
from ngshare.domain.policies import solutions_open, student_status


def feedback_news(
    session: Session, course: str, student: str, submission_ids: list[int]
) -> dict[int, str]:
    """For each submission with feedback: `new` (never fetched), `updated` (changed since
    the student last fetched it) or `seen`."""
    if not submission_ids:
        return {}
    released = dict(
        session.execute(
            select(Feedback.submission_id, Feedback.created_at).where(
                Feedback.submission_id.in_(submission_ids)
            )
        ).all()
    )
    fetched = dict(
        session.execute(
            select(Event.submission_id, func.max(Event.at))
            .where(
                Event.course == course,
                Event.action == "feedback_fetch",
                Event.actor == student,
                Event.submission_id.in_(list(released)),
            )
            .group_by(Event.submission_id)
        ).all()
    )
    news = {}
    for submission_id, updated_at in released.items():
        seen = fetched.get(submission_id)
        if seen is None:
            news[submission_id] = "new"
        elif seen < updated_at:
            news[submission_id] = "updated"
        else:
            news[submission_id] = "seen"
    return news


def student_statuses(
    session: Session, course: str, assignments: list[Assignment], student: str, now: datetime
) -> dict[int, dict]:
    """`{assignment id: status}` for one student (see `policies.student_status`), with
    the release version of their newest submission, whether a newer release exists,
    the feedback news and whether solutions may be fetched."""
    ids = [a.id for a in assignments]
    if not ids:
        return {}
    extended = dict(
        session.execute(
            select(Extension.assignment_id, Extension.due_at).where(
                Extension.assignment_id.in_(ids), Extension.student == student
            )
        ).all()
    )
    mine: dict[int, list] = defaultdict(list)
    rows = session.execute(
        select(Submission, Release.version)
        .outerjoin(Release, Release.id == Submission.release_id)
        .where(Submission.assignment_id.in_(ids), Submission.student == student)
        .order_by(Submission.timestamp)
    )
    for submission, version in rows:
        mine[submission.assignment_id].append((submission, version))
    news = feedback_news(
        session, course, student, [s.id for rows in mine.values() for s, _ in rows]
    )
    current = dict(
        session.execute(
            select(Release.assignment_id, Release.version).where(
                Release.id.in_([a.current_release_id for a in assignments if a.current_release_id])
            )
        ).all()
    )
    out = {}
    for assignment in assignments:
        made = mine.get(assignment.id, [])
        last, last_version = made[-1] if made else (None, None)
        deadline = extended.get(assignment.id) or assignment.due_at
        status = student_status(
            assignment,
            deadline,
            len(made),
            last.on_time if last else None,
            last.timestamp if last else None,
            last.deadline if last else None,
            now,
        )
        states = [news[s.id] for s, _ in made if s.id in news]
        status["feedback"] = (
            "new" if "new" in states else "updated" if "updated" in states else
            "seen" if states else None
        )  # fmt: skip
        version = current.get(assignment.id)
        status["submitted_version"] = last_version
        status["newer_version"] = bool(last_version and version and version > last_version)
        status["solutions_available"] = solutions_open(assignment, deadline, now)
        out[assignment.id] = status
    return out
