"""Feedback on one submission: at most one set, replaced whole or withdrawn."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple

from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ngshare.config import Limits
from ngshare.db.models import Feedback, Submission
from ngshare.domain.audit import Origin
from ngshare.domain.filesets import StagedFile, create_fileset, drop_filesets, manifest_digest
from ngshare.domain.manifests import check_manifest
from ngshare.errors import BadRequest, Conflict, NotFound, about
from ngshare.storage import BlobStore

_OWNERS = select(Submission.id, Submission.student).where(
    Submission.assignment_id == bindparam("assignment_id"),
    Submission.id.in_(bindparam("ids", expanding=True)),
)


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
    return _replace(session, course_id, submission_id, old, files, user)


def _replace(
    session: Session,
    course_id: int,
    submission_id: int,
    old: Feedback | None,
    files: list[StagedFile],
    user: str,
) -> Feedback:
    if old is not None:
        remove_feedback(session, old)
    fileset = create_fileset(session, course_id, "feedback", files)
    feedback = Feedback(submission_id=submission_id, fileset_id=fileset.id, created_by=user)
    session.add(feedback)
    session.flush()
    return feedback


class Released(NamedTuple):
    feedback: Feedback
    changed: bool
    growth: int  # bytes the course now stores more (fewer, when negative)


def release_feedback(
    session: Session, course_id: int, submission_id: int, files: list[StagedFile], user: str
) -> Released:
    """Make `files` the submission's feedback unless they already are (the same tree
    released again keeps the earlier set and its time)."""
    old = current_feedback(session, submission_id)
    if old is not None and old.fileset.digest == manifest_digest(files):
        return Released(old, False, 0)
    growth = replacement_growth(old, files)
    return Released(_replace(session, course_id, submission_id, old, files, user), True, growth)


def replacement_growth(old: Feedback | None, files: list[StagedFile]) -> int:
    """Bytes the course stores more once `files` replace `old` (fewer, when negative)."""
    return sum(f.digest.size for f in files) - (old.fileset.total_size if old else 0)


def check_owners(session: Session, assignment_id: int, pairs: list[tuple[str, int]]) -> None:
    """Each (student, submission id) names a submission of the assignment by that student,
    and no submission comes twice; the error names every pair that does not."""
    twice = sorted(i for i, n in Counter(i for _, i in pairs).items() if n > 1)
    if twice:
        raise BadRequest(f"Submission {twice[0]} is named more than once")
    params = {"assignment_id": assignment_id, "ids": [i for _, i in pairs]}
    owners = dict(session.execute(_OWNERS, params).tuples().all())
    unknown = [f"{student}/{i}" for student, i in pairs if owners.get(i) != student]
    if unknown:
        shown = ", ".join(unknown[:10]) + (", ..." if len(unknown) > 10 else "")
        raise NotFound(
            f"{len(unknown)} submission(s) not found in this assignment: {shown}",
            extra={"unknown": unknown},
        )


def staged_sets(
    trees: list[tuple[str, list]], limits: Limits, store: BlobStore
) -> list[list[StagedFile]]:
    """Each (label, tree) checked as one manifest, an error starting with its label;
    the blobs missing from any are named together, so a client sends them in one go."""
    staged, missing = [], {}
    for label, files in trees:
        try:
            with about(label):
                staged.append(check_manifest(files, limits, store))
        except Conflict as exc:
            if exc.reason != "blobs_missing":
                raise
            missing.update(dict.fromkeys(exc.extra["missing"]))  # type: ignore[arg-type]
    if missing:
        raise Conflict(
            f"{len(missing)} file(s) are not uploaded yet; upload the missing blobs first",
            reason="blobs_missing",
            extra={"missing": list(missing)},
        )
    return staged


def record_release(
    session: Session,
    origin: Origin,
    course: str,
    user: str,
    assignment: str,
    student: str,
    feedback: Feedback,
) -> None:
    """The audit row of a feedback release (v1 and v2 write the same)."""
    origin.record(
        session,
        course,
        "feedback_release",
        user,
        assignment=assignment,
        student=student,
        submission_id=feedback.submission_id,
        digest=feedback.fileset.digest,
    )


@contextmanager
def one_release_at_a_time() -> Iterator[None]:
    """A 409 to retry, not a 500, when two requests release one submission's feedback
    at once: the second insert breaks the one-set-per-submission constraint."""
    try:
        yield
    except IntegrityError:
        raise Conflict("Feedback for this submission is being uploaded; try again") from None
