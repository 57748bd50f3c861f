"""`ngshare import-ngshare`: bring an older ngshare (0.5, 0.6) installation into ours.

It reads the old database (any SQLAlchemy URL) and the old storage directory
and adds to ours: courses, rosters with names, assignments, every submission
with its original timestamp (so `timestamp.txt` files that clients kept still
address it) and feedback. Every file's md5 is checked against the old
database; a file that is missing or does not match is reported and the
release, submission or feedback it belongs to is skipped, never imported
half. Running it twice adds nothing the second time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import create_engine, inspect, select, text
from sqlalchemy.engine import Connection

from ngshare.db.engine import Database
from ngshare.db.models import Assignment, Course, Member, Submission
from ngshare.domain.feedback import current_feedback, set_feedback
from ngshare.domain.filesets import StagedFile, create_fileset, manifest_digest
from ngshare.domain.releases import add_release, assignment_row, current_release
from ngshare.storage import BlobStore
from ngshare.storage.base import CHUNK, Digest


@dataclass
class ImportReport:
    courses: int = 0
    members: int = 0
    releases: int = 0
    submissions: int = 0
    feedback: int = 0
    unchanged: int = 0
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"imported {self.courses} courses, {self.members} roster entries, "
            f"{self.releases} releases, {self.submissions} submissions, {self.feedback} "
            f"feedback sets; {self.unchanged} already present; {len(self.problems)} problems"
        )


class FileProblem(Exception):
    """An old file is missing or its bytes do not match the old md5."""


class OldInstallation:
    """Read access to an older ngshare's database and storage directory."""

    def __init__(self, url: str, storage: Path) -> None:
        self.engine = create_engine(url)
        self.storage = Path(storage)
        tables = set(inspect(self.engine).get_table_names())
        if not {"courses", "assignments", "submissions", "files"} <= tables:
            raise ValueError(f"{url} does not look like an ngshare 0.5/0.6 database")

    def rows(self, connection: Connection, sql: str, **params: object) -> list:
        return list(connection.execute(text(sql), params))

    def files(self, connection: Connection, table: str, owner: object) -> list:
        return self.rows(
            connection,
            f"SELECT f.filename, f.checksum, f.actual_name FROM files f JOIN {table} a "
            "ON a.right_id = f._id WHERE a.left_id = :owner ORDER BY f._id",
            owner=owner,
        )


def import_old(old: OldInstallation, db: Database, store: BlobStore) -> ImportReport:
    report = ImportReport()
    with old.engine.connect() as connection:
        for course_pk, course in old.rows(connection, "SELECT _id, id FROM courses ORDER BY _id"):
            _import_course(old, connection, db, store, course_pk, course, report)
    old.engine.dispose()
    return report


def _import_course(old, connection, db, store, course_pk, course, report) -> None:
    with db.write() as session:
        row = session.scalar(select(Course).where(Course.name == course))
        if row is None:
            row = Course(name=course)
            session.add(row)
            session.flush()
            report.courses += 1
        course_id = row.id
        for role, table in (
            ("instructor", "instructor_assoc_table"),
            ("student", "student_assoc_table"),
        ):
            people = old.rows(
                connection,
                "SELECT left_id, first_name, last_name, email FROM "
                f"{table} WHERE right_id = :course",
                course=course,
            )
            for user, first, last, email in people:
                report.members += _member(session, course_id, user, role, first, last, email)
    assignments = old.rows(
        connection, "SELECT _id, id FROM assignments WHERE course_id = :c ORDER BY _id", c=course_pk
    )
    for assignment_pk, name in assignments:
        _import_assignment(
            old, connection, db, store, course, course_id, assignment_pk, name, report
        )


def _member(session, course_id, user, role, first, last, email) -> int:
    existing = session.scalar(
        select(Member).where(Member.course_id == course_id, Member.username == user)
    )
    if existing is not None:
        return 0
    session.add(
        Member(
            course_id=course_id,
            username=user,
            role=role,
            first_name=first,
            last_name=last,
            email=email,
        )
    )
    return 1


def _import_assignment(old, connection, db, store, course, course_id, pk, name, report) -> None:
    where = f"{course}/{name}"
    try:
        staged = _stage(old, store, old.files(connection, "assignment_files_assoc_table", pk))
    except FileProblem as exc:
        report.problems.append(f"release {where}: {exc}")
        return
    with db.write() as session:
        row = assignment_row(session, course_id, name)
        current = current_release(session, row)
        if current is not None and current.fileset.digest == manifest_digest(staged):
            report.unchanged += 1
        else:
            add_release(session, row, staged, "import-ngshare")
            report.releases += 1
        assignment_id = row.id
    submissions = old.rows(
        connection,
        "SELECT _id, student_id, timestamp FROM submissions WHERE assignment_id = :a ORDER BY _id",
        a=pk,
    )
    for submission_pk, student, stamp in submissions:
        _import_submission(
            old,
            connection,
            db,
            store,
            assignment_id,
            submission_pk,
            student,
            _utc(stamp),
            f"{where}/{student}",
            report,
        )


def _import_submission(
    old, connection, db, store, assignment_id, pk, student, stamp, where, report
) -> None:
    try:
        files = _stage(old, store, old.files(connection, "submission_files_assoc_table", pk))
        feedback = _stage(old, store, old.files(connection, "feedback_files_assoc_table", pk))
    except FileProblem as exc:
        report.problems.append(f"submission {where} at {stamp}: {exc}")
        return
    with db.write() as session:
        row = session.scalar(
            select(Submission).where(
                Submission.assignment_id == assignment_id,
                Submission.student == student,
                Submission.timestamp == stamp,
            )
        )
        assignment = session.get(Assignment, assignment_id)
        if row is None:
            row = Submission(
                assignment_id=assignment_id,
                student=student,
                timestamp=stamp,
                release_id=assignment.current_release_id,
                fileset_id=create_fileset(session, assignment.course_id, "submission", files).id,
            )
            session.add(row)
            session.flush()
            report.submissions += 1
        else:
            report.unchanged += 1
        if feedback:
            report.feedback += _feedback(session, assignment.course_id, row.id, feedback)


def _feedback(session, course_id: int, submission_id: int, files: list[StagedFile]) -> int:
    existing = current_feedback(session, submission_id)
    if existing is not None and existing.fileset.digest == manifest_digest(files):
        return 0
    set_feedback(session, course_id, submission_id, files, "import-ngshare")
    return 1


def _stage(old: OldInstallation, store: BlobStore, files: list) -> list[StagedFile]:
    """Copy the old files into the blob store, each md5 checked; all or nothing."""
    staged: list = []
    try:
        for filename, checksum, actual_name in files:
            staged.append((filename, *_copy(old.storage / actual_name, filename, checksum, store)))
    except BaseException:
        for _name, staging, _digest in staged:
            staging.discard()
        raise
    for _name, staging, _digest in staged:
        staging.commit()
    return [StagedFile(name, Digest(d.sha256, d.md5, d.size)) for name, _s, d in staged]


def _copy(source: Path, filename: str, checksum: str, store: BlobStore) -> tuple:
    if not source.is_file():
        raise FileProblem(f"{filename}: {source} is missing")
    staging = store.stage()
    with source.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            staging.write(chunk)
    digest = staging.finish()
    if digest.md5 != checksum:
        staging.discard()
        raise FileProblem(f"{filename}: md5 {digest.md5} does not match {checksum}")
    return staging, digest


def _utc(value: object) -> datetime:
    """Old timestamps are naive UTC (datetime, or text on SQLite)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace(" UTC", "").strip())
    assert isinstance(value, datetime)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
