"""Releasing an assignment: every release is a new numbered version."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ngshare.db.models import Assignment, Release
from ngshare.domain.filesets import StagedFile, create_fileset
from ngshare.timestamps import utcnow


def assignment_row(session: Session, course_id: int, name: str) -> Assignment:
    """The assignment named `name`, created (unreleased) when it does not exist yet."""
    row = session.scalar(
        select(Assignment).where(Assignment.course_id == course_id, Assignment.name == name)
    )
    if row is None:
        row = Assignment(course_id=course_id, name=name)
        session.add(row)
        session.flush()
    return row


def current_release(session: Session, assignment: Assignment) -> Release | None:
    if assignment.current_release_id is None:
        return None
    return session.get(Release, assignment.current_release_id)


def add_release(
    session: Session, assignment: Assignment, files: list[StagedFile], user: str
) -> Release:
    """Commit `files` as the next version and make it the current release."""
    latest = session.scalar(
        select(func.coalesce(func.max(Release.version), 0)).where(
            Release.assignment_id == assignment.id
        )
    )
    fileset = create_fileset(session, assignment.course_id, "release", files)
    release = Release(
        assignment_id=assignment.id, version=latest + 1, fileset_id=fileset.id, created_by=user
    )
    session.add(release)
    session.flush()
    assignment.current_release_id = release.id
    assignment.released_at = utcnow()
    return release
