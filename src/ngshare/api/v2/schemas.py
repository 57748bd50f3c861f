"""v2 request and response bodies (they also make the OpenAPI document)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

SHA256 = r"^[0-9a-f]{64}$"


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


class CourseList(BaseModel):
    courses: list[CourseOut]


class AssignmentSummary(BaseModel):
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
    feedback: FeedbackState | None


class SubmissionList(BaseModel):
    submissions: list[SubmissionOut]


class SubmissionDetail(SubmissionOut):
    files: list[ManifestFile]


class FeedbackOut(BaseModel):
    submission_id: int
    updated_at: datetime
    files: list[ManifestFile]
