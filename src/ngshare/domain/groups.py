"""Rosters from JupyterHub groups.

A hub that already keeps course groups (for example `nbgrader-cs101` for the
students and `formgrade-cs101` for the instructors of cs101) needs no second
roster: with a group-name pattern per role, the sync reads every group
through the Hub API with the service's own token, and makes each matching
course's membership follow its groups. It adds and removes only members that
it added itself (`source = "hub-group"`); people added by hand are never
touched, and an instructor is never demoted to student by a student group.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

import httpx
from sqlalchemy import select

from ngshare.db.engine import Database
from ngshare.db.models import Course, Member

log = logging.getLogger("ngshare.groups")

SOURCE = "hub-group"
PAGINATED = "application/jupyterhub-pagination+json"


def pattern_regex(pattern: str) -> re.Pattern[str]:
    """`nbgrader-{course}` -> a regex whose `course` group is the course name."""
    if pattern.count("{course}") != 1:
        raise ValueError(f"group pattern {pattern!r} must contain {{course}} exactly once")
    before, after = pattern.split("{course}")
    return re.compile(f"^{re.escape(before)}(?P<course>.+){re.escape(after)}$")


def fetch_groups(api_url: str, token: str, timeout: float) -> dict[str, list[str]]:
    """Every group of the hub with its members (needs the list:groups, read:groups scopes)."""
    groups: dict[str, list[str]] = {}
    offset = 0
    headers = {"Authorization": f"token {token}", "Accept": PAGINATED}
    with httpx.Client(timeout=timeout, headers=headers) as client:
        for _page in range(10_000):
            response = client.get(f"{api_url.rstrip('/')}/groups", params={"offset": offset})
            response.raise_for_status()
            body = response.json()
            items = body["items"] if isinstance(body, dict) else body
            for group in items:
                groups[group["name"]] = list(group.get("users", []))
            following = body.get("_pagination", {}).get("next") if isinstance(body, dict) else None
            if not following:
                break
            offset = following["offset"]
    return groups


def desired_rosters(
    groups: dict[str, list[str]], student_pattern: str | None, instructor_pattern: str | None
) -> dict[str, dict[str, set[str]]]:
    """course -> role -> user names, from the groups that match the patterns."""
    wanted: dict[str, dict[str, set[str]]] = {}
    for role, pattern in (("student", student_pattern), ("instructor", instructor_pattern)):
        if not pattern:
            continue
        regex = pattern_regex(pattern)
        for name, users in groups.items():
            match = regex.match(name)
            if match:
                roles = wanted.setdefault(match["course"], {"student": set(), "instructor": set()})
                roles[role].update(users)
    return wanted


@dataclass
class SyncReport:
    courses_created: list[str] = field(default_factory=list)
    added: list[tuple[str, str, str]] = field(default_factory=list)  # course, user, role
    removed: list[tuple[str, str]] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"created {len(self.courses_created)} courses, added or changed "
            f"{len(self.added)} memberships, removed {len(self.removed)}"
        )


def apply_rosters(
    db: Database, wanted: dict[str, dict[str, set[str]]], create_courses: bool
) -> SyncReport:
    report = SyncReport()
    with db.write() as session:
        courses = {c.name: c for c in session.scalars(select(Course))}
        for name, roles in sorted(wanted.items()):
            course = courses.get(name)
            if course is None:
                if not create_courses or not roles["instructor"]:
                    continue
                course = Course(name=name)
                session.add(course)
                session.flush()
                report.courses_created.append(name)
            _sync_course(session, course, roles, report)
        for name, course in courses.items():
            if name not in wanted:  # its groups are gone: drop what the sync added
                _sync_course(session, course, {"student": set(), "instructor": set()}, report)
    if report.added or report.removed or report.courses_created:
        log.info("group sync: %s", report.summary())
    return report


def _sync_course(session, course: Course, roles: dict[str, set[str]], report: SyncReport) -> None:
    members = {m.username: m for m in session.scalars(
        select(Member).where(Member.course_id == course.id))}  # fmt: skip
    target = {user: "student" for user in roles["student"]}
    target.update({user: "instructor" for user in roles["instructor"]})
    for user, role in sorted(target.items()):
        current = members.get(user)
        if current is None:
            session.add(Member(course_id=course.id, username=user, role=role, source=SOURCE))
            report.added.append((course.name, user, role))
        elif current.source == SOURCE and current.role != role:
            current.role = role
            report.added.append((course.name, user, role))
    for user, member in members.items():
        if member.source == SOURCE and user not in target:
            session.delete(member)
            report.removed.append((course.name, user))


def sync_from_hub(db: Database, settings) -> SyncReport:
    """One sync with the Hub named by JUPYTERHUB_API_URL and the service token."""
    from ngshare.auth.hub import hub_api

    api_url, token = hub_api()
    groups = fetch_groups(api_url, token, settings.hub_timeout_seconds)
    wanted = desired_rosters(groups, settings.hub_student_groups, settings.hub_instructor_groups)
    return apply_rosters(db, wanted, settings.group_sync_creates_courses)
