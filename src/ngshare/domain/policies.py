"""Course policies: lifecycle, release schedule, deadlines, extensions, late window,
submission limit, solutions (docs/policies.md).

Every decision takes `now` from `ngshare.timestamps.now()` (the test clock
when one is configured). A submission's on-time flag is decided here, at
submit time, against the stamp it gets, and is stored with it.

Policies bind students. Instructors and admins see drafts and may submit
whatever the state or deadline (to try an assignment out); their submissions
still get an on-time flag.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from ngshare.db.models import Assignment, Extension, Submission
from ngshare.errors import BadRequest, NgshareError

STATES = ("draft", "released", "closed", "archived")
SOLUTION_MODES = ("none", "all", "after_due")


class PolicyRefused(NgshareError):
    """A submission that a course policy refuses (409, with the rule in `reason`)."""

    status = 409


# Time zones and times


def zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise BadRequest(
            f"Unknown time zone {name!r}: use an IANA name such as Europe/Paris or UTC"
        ) from None


def parse_moment(text: str, timezone: str | None) -> datetime:
    """`2026-12-01 17:00` (in `timezone`, default UTC) or ISO 8601 with an offset, as UTC."""
    cleaned = text.strip().replace("T", " ", 1)
    try:
        moment = datetime.fromisoformat(cleaned)
    except ValueError:
        raise BadRequest(
            f"Cannot read the time {text!r}: use YYYY-MM-DD HH:MM[:SS[.ffffff]] in the "
            "assignment's time zone, or ISO 8601 with an offset"
        ) from None
    if not 1970 <= moment.year <= 9000:
        raise BadRequest(f"The time {text!r} is out of range (years 1970 to 9000)")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone(timezone))
    return moment.astimezone(UTC)


def show(moment: datetime | None, timezone: str | None) -> str | None:
    """`2026-12-01 17:00 Europe/Paris`, with seconds and microseconds only when not zero."""
    if moment is None:
        return None
    local = moment.astimezone(zone(timezone))
    text = local.strftime("%Y-%m-%d %H:%M")
    if local.second or local.microsecond:
        text += local.strftime(":%S")
    if local.microsecond:
        text += local.strftime(".%f")
    return f"{text} {timezone or 'UTC'}"


DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|min|h|d|w)?\s*$", re.IGNORECASE)
UNITS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}


def parse_duration(text: str) -> int:
    """`90s`, `30m`, `2h`, `3d`, `1w` (or plain seconds) as whole seconds."""
    match = DURATION.match(text)
    if match is None:
        raise ValueError(f"cannot read the duration {text!r}: use e.g. 90s, 30m, 2h, 3d or 1w")
    unit = match.group(2).lower() if match.group(2) else None
    return int(float(match.group(1)) * UNITS[unit])


def show_duration(seconds: float) -> str:
    """`2 d 3 h`, `5 min 10 s`, `0.000001 s`: the two largest units."""
    if seconds < 1:
        return f"{seconds:.6f}".rstrip("0").rstrip(".") + " s"
    parts = []
    rest = int(seconds)
    for name, size in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        if rest >= size:
            parts.append(f"{rest // size} {name}")
            rest %= size
    return " ".join(parts[:2])


# Visibility


def visible_to_students(assignment: Assignment, now: datetime) -> bool:
    """Listed and fetchable by students: released or closed, from `visible_at` on."""
    return (
        assignment.current_release_id is not None
        and assignment.state in ("released", "closed")
        and (assignment.visible_at is None or assignment.visible_at <= now)
    )


def own_work_readable(assignment: Assignment, now: datetime) -> bool:
    """Students reach their own submissions and feedback: as visible, and when archived."""
    return (
        assignment.current_release_id is not None
        and assignment.state != "draft"
        and (assignment.visible_at is None or assignment.visible_at <= now)
    )


def effective_state(assignment: Assignment, now: datetime) -> str:
    """draft, scheduled, released, closed, archived, or withdrawn (no current release)."""
    if assignment.current_release_id is None and assignment.state != "draft":
        return "withdrawn"
    if (
        assignment.state == "released"
        and assignment.visible_at is not None
        and assignment.visible_at > now
    ):
        return "scheduled"
    return assignment.state


# Deadlines


_EXTENSION = select(Extension.due_at).where(
    Extension.assignment_id == bindparam("assignment_id"), Extension.student == bindparam("student")
)  # built once: every submission asks


def extension_of(session: Session, assignment_id: int, student: str) -> datetime | None:
    return session.scalar(_EXTENSION, {"assignment_id": assignment_id, "student": student})


def extensions_of(session: Session, assignment_id: int) -> dict[str, Extension]:
    rows = session.scalars(
        select(Extension)
        .where(Extension.assignment_id == assignment_id)
        .order_by(Extension.student)
    )
    return {row.student: row for row in rows}


def late_until(assignment: Assignment, deadline: datetime | None) -> datetime | None:
    if deadline is None or assignment.late_window_seconds is None:
        return None
    return deadline + timedelta(seconds=assignment.late_window_seconds)


def submission_count(session: Session, assignment_id: int, student: str) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(Submission)
            .where(Submission.assignment_id == assignment_id, Submission.student == student)
        )
        or 0
    )


@dataclass
class Verdict:
    deadline: datetime | None
    on_time: bool | None


def judge_submission(
    session: Session, assignment: Assignment, student: str, stamp: datetime, bound: bool
) -> Verdict:
    """The deadline and on-time flag for a submission stamped `stamp`; a refusal
    (PolicyRefused) when `bound` (a student) and a rule forbids it."""
    extended = extension_of(session, assignment.id, student)
    deadline = extended or assignment.due_at
    tz = assignment.timezone
    name = assignment.name
    if bound:
        if assignment.state in ("closed", "archived"):
            raise PolicyRefused(
                f"{name} is {assignment.state}: it accepts no more submissions",
                reason="assignment_closed",
            )
        limit = assignment.max_submissions
        if limit is not None:
            made = submission_count(session, assignment.id, student)
            if made >= limit:
                raise PolicyRefused(
                    f"You have made {made} submissions of {name}; the limit is {limit}, "
                    "so no more are accepted",
                    reason="submission_limit",
                )
        closes = late_until(assignment, deadline)
        if closes is not None and stamp > closes:
            whose = "Your extended deadline" if extended else "The deadline"
            late = (
                "late submissions are not accepted"
                if closes == deadline
                else f"late submissions closed at {show(closes, tz)}"
            )
            raise PolicyRefused(
                f"{whose} of {name} ({show(deadline, tz)}) has passed and {late}",
                reason="deadline_passed",
            )
    return Verdict(deadline, None if deadline is None else stamp <= deadline)


def solutions_open(assignment: Assignment, deadline: datetime | None, now: datetime) -> bool:
    """Whether a student whose deadline is `deadline` may fetch the solutions now."""
    if assignment.solutions_fileset_id is None or assignment.solutions == "none":
        return False
    if assignment.solutions == "all":
        return True
    closes = late_until(assignment, deadline) or deadline
    return closes is not None and now > closes


# What a student sees


def student_status(
    assignment: Assignment,
    deadline: datetime | None,
    submissions: int,
    last_on_time: bool | None,
    last_stamp: datetime | None,
    last_deadline: datetime | None,
    now: datetime,
) -> dict:
    """The student's standing: status, words for it, and what is left."""
    tz = assignment.timezone
    closes = late_until(assignment, deadline)
    accepting = assignment.state == "released" and (closes is None or now <= closes)
    remaining = None
    if assignment.max_submissions is not None:
        remaining = max(assignment.max_submissions - submissions, 0)
        accepting = accepting and remaining > 0
    if submissions:
        if last_on_time is None:
            status, words = "submitted", "submitted"
        elif last_on_time:
            status, words = "on_time", "submitted on time"
        else:
            late_by = (last_stamp - last_deadline).total_seconds()  # type: ignore[operator]
            status, words = "late", f"submitted {show_duration(late_by)} late"
    elif deadline is not None and now > deadline:
        status, words = ("overdue", "not submitted, overdue") if accepting else ("missed", "missed")
    else:
        status, words = "not_submitted", "not submitted"
    return {
        "status": status,
        "status_text": words,
        "deadline": deadline,
        "due": show(deadline, tz),
        "extended": deadline is not None and deadline != assignment.due_at,
        "late_until": closes,
        "submissions": submissions,
        "remaining": remaining,
        "accepting": accepting,
    }
