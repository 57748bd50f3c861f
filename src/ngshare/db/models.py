"""The metadata schema.

Files are content-addressed: a `Blob` row is one stored byte string (sha256),
a `FileSet` is an immutable manifest of (path -> blob), and releases,
submissions and feedback each point at one file set. Bytes live in the blob
store; a blob row is written only after its bytes are durable there.

Submissions and feedback reference students by user name, not by roster row,
so removing a student from a course keeps their submissions.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from ngshare.db.types import UTCDateTime
from ngshare.timestamps import utcnow

NAME = String(255)


class Base(DeclarativeBase):
    pass


class Course(Base):
    __tablename__ = "courses"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(NAME, unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Bytes of the course's file sets at full size, kept in step by the code that
    # inserts and deletes them (`ngshare.domain.filesets`): the quota check reads one
    # row instead of summing a semester of submissions inside the write lock
    stored_bytes: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")

    members: Mapped[list[Member]] = relationship(
        back_populates="course", cascade="all, delete-orphan", passive_deletes=True
    )


class Member(Base):
    """One user's role in one course, with the names the roster shows."""

    __tablename__ = "members"
    __table_args__ = (UniqueConstraint("course_id", "username"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id", ondelete="CASCADE"))
    username: Mapped[str] = mapped_column(NAME)
    role: Mapped[str] = mapped_column(String(16))  # "instructor" or "student"
    first_name: Mapped[str | None] = mapped_column(String(255))
    last_name: Mapped[str | None] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(String(255))
    # "manual" (API, CLI, pages) or "hub-group" (JupyterHub group sync, which
    # only ever removes the members it added itself)
    source: Mapped[str] = mapped_column(String(16), default="manual", server_default="manual")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    course: Mapped[Course] = relationship(back_populates="members")


class Blob(Base):
    """A stored byte string, named by its sha256.

    md5 is what v1 calls a checksum. v1 uploads compute it while decoding;
    blobs uploaded through v2 get it the first time a v1 client lists them,
    so v2 transfers pay for one hash only. xxh3 is what downloads are
    checked with (`ngshare.checksums`): set by a streamed v2 upload, which
    computes it beside the sha256 it verifies; unknown for other blobs.
    """

    __tablename__ = "blobs"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    md5: Mapped[str | None] = mapped_column(String(32))
    xxh3: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class FileSet(Base):
    """An immutable directory tree: the files of a release, submission or feedback."""

    __tablename__ = "filesets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # the course whose quota it counts against; NULL for sets that no row referenced
    # when migration 0006 ran (the garbage collector's). SET NULL, not CASCADE: on
    # PostgreSQL a cascade from the course would drop a set before the feedback row
    # three levels down that still names it; `delete_course` drops the sets after.
    course_id: Mapped[int | None] = mapped_column(
        ForeignKey("courses.id", ondelete="SET NULL", name="fk_filesets_course"), index=True
    )
    kind: Mapped[str] = mapped_column(String(16))
    digest: Mapped[str | None] = mapped_column(String(64), index=True)
    file_count: Mapped[int] = mapped_column(Integer, default=0)
    total_size: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    files: Mapped[list[FileEntry]] = relationship(
        back_populates="fileset",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="FileEntry.id",
    )


class FileEntry(Base):
    __tablename__ = "files"
    __table_args__ = (UniqueConstraint("fileset_id", "path"), Index("ix_files_sha256", "sha256"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    fileset_id: Mapped[int] = mapped_column(ForeignKey("filesets.id", ondelete="CASCADE"))
    path: Mapped[str] = mapped_column(String(4096))
    sha256: Mapped[str] = mapped_column(ForeignKey("blobs.sha256"))
    executable: Mapped[bool] = mapped_column(Boolean, default=False)

    fileset: Mapped[FileSet] = relationship(back_populates="files")
    blob: Mapped[Blob] = relationship(lazy="joined")


class Assignment(Base):
    """An assignment name in a course; its files are in its current release.

    Deleting an assignment through v1 only withdraws the release
    (`current_release_id` becomes NULL), so students' submissions survive a
    `release_assignment --force` done as delete-then-release.
    """

    __tablename__ = "assignments"
    __table_args__ = (UniqueConstraint("course_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(NAME)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    current_release_id: Mapped[int | None] = mapped_column(
        ForeignKey("releases.id", ondelete="SET NULL", use_alter=True, name="fk_current_release")
    )
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Course policies (docs/policies.md). `state`: draft (instructors only),
    # released (students see it from `visible_at`), closed (no more
    # submissions), archived (closed, and gone from students' lists).
    state: Mapped[str] = mapped_column(String(16), default="released", server_default="released")
    visible_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    timezone: Mapped[str | None] = mapped_column(String(64))  # IANA name, for display
    late_window_seconds: Mapped[int | None] = mapped_column(Integer)  # None: late accepted
    max_submissions: Mapped[int | None] = mapped_column(Integer)
    # solutions: "none" (not released), "all" (now), "after_due" (after each student's deadline)
    solutions: Mapped[str] = mapped_column(String(16), default="none", server_default="none")
    solutions_fileset_id: Mapped[int | None] = mapped_column(
        ForeignKey("filesets.id", name="fk_assignments_solutions")
    )

    current_release: Mapped[Release | None] = relationship(
        foreign_keys=[current_release_id], post_update=True
    )


class Extension(Base):
    """A student's own deadline for one assignment (instead of the assignment's)."""

    __tablename__ = "extensions"
    __table_args__ = (UniqueConstraint("assignment_id", "student"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignments.id", ondelete="CASCADE"))
    student: Mapped[str] = mapped_column(NAME)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(NAME)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Release(Base):
    """One released version of an assignment's files."""

    __tablename__ = "releases"
    __table_args__ = (UniqueConstraint("assignment_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignments.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    fileset_id: Mapped[int] = mapped_column(ForeignKey("filesets.id"))
    created_by: Mapped[str] = mapped_column(NAME)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    fileset: Mapped[FileSet] = relationship()


class Submission(Base):
    __tablename__ = "submissions"
    __table_args__ = (
        UniqueConstraint("assignment_id", "student", "timestamp"),
        UniqueConstraint("assignment_id", "student", "client_key", name="uq_submission_key"),
        Index("ix_submissions_student", "assignment_id", "student"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignments.id", ondelete="CASCADE"))
    student: Mapped[str] = mapped_column(NAME)
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime)
    release_id: Mapped[int | None] = mapped_column(ForeignKey("releases.id", ondelete="SET NULL"))
    fileset_id: Mapped[int] = mapped_column(ForeignKey("filesets.id"))
    client_key: Mapped[str | None] = mapped_column(String(64))
    # Decided at submit time and never changed: the student's deadline then
    # (with their extension) and whether the stamp was at or before it.
    # NULL for submissions made while the assignment had no deadline.
    deadline: Mapped[datetime | None] = mapped_column(UTCDateTime)
    on_time: Mapped[bool | None] = mapped_column(Boolean)

    fileset: Mapped[FileSet] = relationship()


class Feedback(Base):
    """The feedback files for one submission; replacing it makes a new file set."""

    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    submission_id: Mapped[int] = mapped_column(
        ForeignKey("submissions.id", ondelete="CASCADE"), unique=True
    )
    fileset_id: Mapped[int] = mapped_column(ForeignKey("filesets.id"))
    created_by: Mapped[str] = mapped_column(NAME)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    fileset: Mapped[FileSet] = relationship()


class Event(Base):
    """One entry of the audit history: who did what to which assignment, when, from where.

    Events name courses and people by name and have no foreign keys, so the
    history outlives deleted courses, assignments and roster entries.
    """

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_course_at", "course", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    course: Mapped[str] = mapped_column(NAME)
    action: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(NAME)
    assignment: Mapped[str | None] = mapped_column(NAME)
    student: Mapped[str | None] = mapped_column(NAME)
    submission_id: Mapped[int | None] = mapped_column(Integer)
    version: Mapped[int | None] = mapped_column(Integer)
    digest: Mapped[str | None] = mapped_column(String(64))
    remote: Mapped[str | None] = mapped_column(String(64))
    api: Mapped[str] = mapped_column(String(8))
