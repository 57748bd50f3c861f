"""Feedback on one submission: at most one set, replaced whole or withdrawn."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ngshare.db.models import Feedback
from ngshare.domain.filesets import StagedFile, create_fileset, drop_filesets


def current_feedback(session: Session, submission_id: int) -> Feedback | None:
    return session.scalar(select(Feedback).where(Feedback.submission_id == submission_id))


def remove_feedback(session: Session, feedback: Feedback) -> None:
    """Delete the feedback row and then its file set (its blobs are left to the GC)."""
    session.delete(feedback)
    session.flush()
    drop_filesets(session, [feedback.fileset_id])


def set_feedback(
    session: Session, course_id: int, submission_id: int, files: list[StagedFile], user: str
) -> Feedback:
    """Make `files` the submission's feedback, replacing any earlier set."""
    old = current_feedback(session, submission_id)
    if old is not None:
        remove_feedback(session, old)
    fileset = create_fileset(session, course_id, "feedback", files)
    feedback = Feedback(submission_id=submission_id, fileset_id=fileset.id, created_by=user)
    session.add(feedback)
    session.flush()
    return feedback
