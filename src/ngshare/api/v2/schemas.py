"""v2 request and response bodies (they also make the OpenAPI document)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

SHA256 = r"^[0-9a-f]{64}$"
MAX_SECONDS = 10 * 366 * 86400  # ten years: late windows and extensions


class ManifestFile(BaseModel):
    path: str = Field(description="Relative POSIX path inside the tree.")
    sha256: str = Field(pattern=SHA256, description="sha256 hex digest of the file's bytes.")
    size: int = Field(ge=0, description="Size in bytes.")
    executable: bool = Field(False, description="Whether the file has its executable bit set.")


class Manifest(BaseModel):
    """A whole directory tree, committed atomically once all its blobs are stored."""

    files: list[ManifestFile]


class HashList(BaseModel):
    sha256: list[str] = Field(description="sha256 hex digests to look for.")


class Missing(BaseModel):
    missing: list[str] = Field(description="The digests the server does not hold.")


class BlobStored(BaseModel):
    sha256: str
    size: int


class UploadState(BaseModel):
    sha256: str
    offset: int = Field(description="Bytes held so far; continue with ?offset=<this>.")
    complete: bool


class CourseOut(BaseModel):
    name: str
    role: str = Field(description="admin, instructor or student")
    stored_bytes: int | None = Field(
        None,
        description="What the course's releases, submissions, feedback and solutions take at "
        "full size, which its quota counts (instructors and admins only)",
    )
    quota_bytes: int | None = Field(
        None, description="The course storage quota (instructors and admins only; null: none)"
    )


class CourseList(BaseModel):
    courses: list[CourseOut]


class StudentStatus(BaseModel):
    """The caller's standing in an assignment (students only)."""

    status: str = Field(
        description="not_submitted, submitted (no deadline), on_time, late, overdue "
        "(not submitted, late submissions still accepted) or missed"
    )
    status_text: str = Field(description="The status in words, e.g. `submitted 2 h 5 min late`")
    deadline: datetime | None = Field(description="Your deadline (with your extension)")
    due: str | None = Field(description="Your deadline in the assignment's time zone")
    extended: bool
    late_until: datetime | None = Field(description="When late submissions stop being accepted")
    submissions: int
    remaining: int | None = Field(description="Submissions left under the limit")
    accepting: bool = Field(description="Whether a submission now would be accepted")
    feedback: str | None = Field(
        description="new (not fetched yet), updated (changed since you fetched it), seen, or null"
    )
    submitted_version: int | None = Field(description="Release version of your newest submission")
    newer_version: bool = Field(description="A newer release exists than the one you submitted")
    solutions_available: bool


class PolicyFields(BaseModel):
    state: str = Field(
        "released", description="draft, released, closed or archived (docs/policies.md)"
    )
    effective_state: str = Field(
        "released", description="The state now: also `scheduled` (released, not yet visible)"
    )
    visible_at: datetime | None = None
    due_at: datetime | None = None
    timezone: str | None = None
    due: str | None = Field(None, description="The deadline in the assignment's time zone")
    late_window_seconds: int | None = None
    max_submissions: int | None = None
    solutions: str = Field("none", description="none, all or after_due")
    me: StudentStatus | None = Field(None, description="The caller's standing (students only)")


class AssignmentSummary(PolicyFields):
    name: str
    version: int
    released_at: datetime
    file_count: int
    total_size: int


class AssignmentList(BaseModel):
    assignments: list[AssignmentSummary]


class AssignmentOut(AssignmentSummary):
    latest_version: int
    files: list[ManifestFile]


class AssignmentSettingsIn(BaseModel):
    """An assignment's policies. PUT replaces them all (missing fields take their
    defaults); PATCH changes the fields given. Times without an offset are read in
    `timezone` (default UTC)."""

    state: Literal["draft", "released", "closed", "archived"] = "released"
    visible_at: str | None = Field(None, description="Release at this time (null: at once)")
    due_at: str | None = Field(None, description="Deadline, e.g. `2026-12-01 17:00`")
    timezone: str | None = Field(None, description="IANA time zone, e.g. Europe/Paris")
    late_window_seconds: int | None = Field(
        None,
        ge=0,
        le=MAX_SECONDS,
        description="Refuse submissions this long after the deadline (null: never)",
    )
    max_submissions: int | None = Field(
        None, ge=1, le=1_000_000, description="Most submissions per student"
    )
    solutions: Literal["none", "all", "after_due"] = Field(
        "none",
        description="Who may fetch the solutions: nobody, everyone, or each student "
        "after their deadline (and late window)",
    )


class ExtensionIn(BaseModel):
    due_at: str | None = Field(None, description="The student's own deadline")
    extra_seconds: int | None = Field(
        None, ge=0, le=MAX_SECONDS, description="Or: this much after the assignment's deadline"
    )


class ExtensionOut(BaseModel):
    student: str
    due_at: datetime
    due: str
    created_by: str


class AssignmentSettings(PolicyFields):
    name: str
    version: int | None = Field(description="Current release version (null: not released)")
    has_solutions: bool
    late_until: datetime | None = Field(
        description="End of the late window for the assignment's deadline"
    )
    extensions: list[ExtensionOut] = Field(
        description="Every extension (instructors); your own (students)"
    )


class FeedbackState(BaseModel):
    updated_at: datetime
    file_count: int


class SubmissionOut(BaseModel):
    id: int
    student: str
    timestamp: str = Field(description="v1 form: `%Y-%m-%d %H:%M:%S.%f` in UTC.")
    submitted_at: datetime
    release_version: int | None
    file_count: int
    total_size: int
    deadline: datetime | None = Field(
        None, description="The student's deadline when it was submitted (with an extension)."
    )
    on_time: bool | None = Field(
        None, description="Decided at submit time; null when there was no deadline."
    )
    late_by_seconds: float | None = Field(None, description="How late, when it was late.")
    feedback: FeedbackState | None


class SubmissionList(BaseModel):
    submissions: list[SubmissionOut]


class SubmissionDetail(SubmissionOut):
    files: list[ManifestFile]


class FeedbackOut(BaseModel):
    submission_id: int
    updated_at: datetime
    files: list[ManifestFile]


BULK_FEEDBACK_SETS = 5000


class FeedbackSet(BaseModel):
    student: str = Field(description="Whose submission this feedback grades")
    submission_id: int
    files: list[ManifestFile]


class BulkFeedback(BaseModel):
    """Feedback for many submissions of one assignment, committed together."""

    feedback: list[FeedbackSet] = Field(
        min_length=1,
        max_length=BULK_FEEDBACK_SETS,
        description="One set per submission; each replaces that submission's feedback",
    )


class FeedbackReleased(BaseModel):
    student: str
    submission_id: int
    updated_at: datetime
    changed: bool = Field(description="False when the set equals the feedback already there")


class BulkFeedbackOut(BaseModel):
    feedback: list[FeedbackReleased]
