"""Every setting an admin can change, declared once.

Each field has a type, a default and a description; the environment variable
is `NGSHARE_<FIELD>` and the command-line flag is `--<field-with-dashes>`.
The CLI (`ngshare serve --help`) and docs/configuration.md are generated from
this class, and a test fails when the document drifts from it.

When JupyterHub starts ngshare as a managed service it exports the standard
`JUPYTERHUB_*` variables; `Settings.resolved()` fills the listen address, the
URL prefix and the authenticator from them so no other configuration is needed.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlparse

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from ngshare.storage.direct import DIRECT_MIN

AuthKind = Literal["hub", "token-file", "dev"]
LogLevel = Literal["debug", "info", "warning", "error"]

MiB = 1024 * 1024
GiB = 1024 * MiB


def _split_names(value: object) -> object:
    """Accept `alice,bob` (and whitespace) as well as a list."""
    if isinstance(value, str):
        return [name.strip() for name in value.split(",") if name.strip()]
    return value


class Settings(BaseSettings):
    """Server configuration. Flags override environment variables."""

    model_config = SettingsConfigDict(env_prefix="NGSHARE_", extra="forbid")

    data_dir: Path = Field(
        Path("ngshare-data"),
        description="Directory for the SQLite database, the local blobs and the cookie secret.",
    )
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL of the metadata database. Default: SQLite file "
        "<data-dir>/ngshare.db. Example: postgresql+psycopg://ngshare@db/ngshare",
    )
    storage: Literal["local", "s3"] = Field(
        "local", description="Where file contents go: a local directory, or an S3 bucket."
    )
    storage_dir: Path | None = Field(
        None, description="Directory of the local blob store. Default: <data-dir>/blobs."
    )
    storage_direct_io_mb: int = Field(
        DIRECT_MIN // 2**20,
        ge=0,
        description="Local store: uploads of at least this many MiB are written with O_DIRECT, "
        "past the page cache (Linux; 0: never).",
    )
    s3_bucket: str | None = Field(None, description="Bucket of the S3 blob store.")
    s3_prefix: str = Field("ngshare", description="Key prefix inside the bucket.")
    s3_endpoint_url: str | None = Field(
        None,
        description="S3 endpoint for MinIO, Ceph or GCS (default: AWS). Credentials come from "
        "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or AWS_SHARED_CREDENTIALS_FILE.",
    )
    s3_region: str | None = Field(None, description="S3 region (default: from the AWS config).")
    auth: AuthKind | None = Field(
        None,
        description="Authenticator: hub (JupyterHub tokens and OAuth), token-file, or dev "
        "(user name from the `user` field; loopback only). Default: hub when "
        "JUPYTERHUB_API_TOKEN is set.",
    )
    dev: bool = Field(False, description="Shortcut for --auth dev.")
    demo: bool = Field(
        False,
        description="At start, create the course `demo` (instructor `instructor`, students "
        "`student1` and `student2`, assignment `ps1`) unless it exists.",
    )
    token_file: Path | None = Field(
        None, description="JSON file mapping API tokens to user names (for --auth token-file)."
    )
    admins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Comma-separated user names that administer every course."
    )
    hub_admins: bool = Field(
        False, description="Also treat JupyterHub admins as ngshare admins (hub auth only)."
    )
    host: str | None = Field(
        None, description="Listen address. Default: from JUPYTERHUB_SERVICE_URL, else 127.0.0.1."
    )
    port: int | None = Field(
        None, description="Listen port. Default: from JUPYTERHUB_SERVICE_URL, else 10101."
    )
    prefix: str | None = Field(
        None,
        description="URL prefix of the API. Default: JUPYTERHUB_SERVICE_PREFIX, else /api/.",
    )
    log_level: LogLevel = Field("info", description="Log level.")
    log_format: Literal["text", "json"] = Field(
        "text", description="Log line format: text, or json (one object per line)."
    )
    metrics_token: str | None = Field(
        None,
        description="Bearer token that Prometheus sends to read <prefix>metrics and /metrics "
        "(without it, only admins may read them).",
    )
    migrate: bool = Field(
        True, description="Apply database migrations at start (--no-migrate to skip)."
    )
    cookie_secret: str | None = Field(
        None,
        description="Secret that signs login cookies; set the same value on every replica. "
        "Default: generated once and kept in <data-dir>/cookie_secret.",
    )
    hub_cache_seconds: int = Field(
        300, description="How long a token's identity from the Hub is cached."
    )
    hub_timeout_seconds: float = Field(
        10.0, description="Timeout of one request to the JupyterHub API."
    )
    body_timeout_seconds: float = Field(
        60, description="Refuse (408) a request whose body stalls this long between two pieces."
    )
    max_connections: int = Field(
        2000, description="Most connections at once; more are answered 503 at once."
    )
    sendfile: bool = Field(
        True,
        description="Send local blobs' bytes with sendfile(2), page cache to socket without "
        "copies, where the server runs plain HTTP under uvicorn's httptools (the default); "
        "off: stream them through Python.",
    )
    socket_body: bool = Field(
        True,
        description="Read the bodies of large uploads (v2 files of 64 MiB and more, v1 "
        "forms of 4 MiB and more) from the socket straight into the upload's buffers, past "
        "uvicorn's copies of them, where the server "
        "runs plain HTTP under uvicorn's httptools (the default); the connection then closes "
        "after the response. Off: through uvicorn.",
    )
    transfer_memory_mib: int = Field(
        64,
        ge=1,
        description="MiB of memory for file contents that all requests share: uploads' small "
        "files and large files' batches wait for room in it, downloads read smaller pieces "
        "to fit in it (docs/operations.md).",
    )
    worker_threads: int = Field(
        8,
        ge=1,
        description="Worker threads for blocking work at once (database sessions, files, "
        "hashes): fewer threads contend less for Python's lock. The reading of large "
        "uploads from their sockets has threads of its own (docs/operations.md).",
    )
    max_request_mib: int = Field(
        1024, description="Largest v1 request body in MiB (v1 sends files base64 in the body)."
    )
    max_file_mib: int = Field(4096, description="Largest single file in MiB.")
    max_upload_mib: int = Field(
        8192, description="Largest release, submission or feedback set in MiB."
    )
    max_files_per_upload: int = Field(
        10000, description="Most files in one release, submission or feedback set."
    )
    hub_student_groups: str | None = Field(
        None,
        description="Take course students from JupyterHub groups with this name pattern, "
        "e.g. nbgrader-{course} (hub auth only; the service needs the list:groups and "
        "read:groups scopes).",
    )
    hub_instructor_groups: str | None = Field(
        None,
        description="Take course instructors from JupyterHub groups with this name pattern, "
        "e.g. formgrade-{course}.",
    )
    group_sync_minutes: float = Field(
        5, description="How often the JupyterHub group sync runs when a pattern is set."
    )
    group_sync_creates_courses: bool = Field(
        True,
        description="Create a course when an instructor group names one that does not exist.",
    )
    gc_interval_minutes: float = Field(
        0,
        description="Run garbage collection in the server every this many minutes (0: never; "
        "use `ngshare gc` from cron instead).",
    )
    gc_grace_minutes: float = Field(
        60, description="Unreferenced blobs younger than this are kept (uploads in flight)."
    )
    upload_expiry_hours: int = Field(
        24, description="Unfinished resumable uploads untouched this long are deleted by the GC."
    )
    clock_file: Path | None = Field(
        None,
        description="TESTS ONLY: read the time of every course policy (schedules, deadlines, "
        "late windows) from this file, which holds one ISO 8601 time with an offset. Refused "
        "with --auth hub; a missing or empty file means the system clock.",
    )
    v1_encoding_cache_mib: int = Field(
        128,
        ge=0,
        description="Memory for recognising files that v1 clients send back unchanged (a "
        "release's dataset in every submission) without decoding them: released files are "
        "kept as v1 encodes them, each one if its encoding (4/3 of its size) fits in a quarter "
        "of this. The default covers files up to 24 MB (0: decode everything).",
    )
    course_quota_mib: int = Field(
        204800,
        description="Storage one course may use in MiB, counting every release, submission, "
        "feedback and solutions set at its full size (0: no quota). Checked by every route "
        "that stores one, v1's included.",
    )

    @field_validator("admins", mode="before")
    @classmethod
    def _admins(cls, value: object) -> object:
        return _split_names(value)

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return "/" + value.strip("/") + "/" if value.strip("/") else "/"

    @field_validator("hub_student_groups", "hub_instructor_groups")
    @classmethod
    def _group_pattern(cls, value: str | None) -> str | None:
        if value is not None and value.count("{course}") != 1:
            raise ValueError("a group pattern must contain {course} exactly once")
        return value

    @field_validator("port")
    @classmethod
    def _port(cls, value: int | None) -> int | None:
        if value is not None and not 0 <= value <= 65535:
            raise ValueError("port must be between 0 and 65535")
        return value

    def resolved(self) -> Settings:
        """Fill defaults that depend on other settings and on JUPYTERHUB_* variables."""
        env = os.environ
        service_url = urlparse(env.get("JUPYTERHUB_SERVICE_URL", ""))
        updates: dict[str, object] = {}
        if self.auth is None:
            if self.dev:
                updates["auth"] = "dev"
            elif self.token_file is not None:
                updates["auth"] = "token-file"
            elif env.get("JUPYTERHUB_API_TOKEN"):
                updates["auth"] = "hub"
        if self.host is None:
            updates["host"] = service_url.hostname or "127.0.0.1"
        if self.port is None:
            updates["port"] = service_url.port or 10101
        if self.prefix is None:
            updates["prefix"] = self._prefix(env.get("JUPYTERHUB_SERVICE_PREFIX") or "/api/")
        if self.database_url is None:
            updates["database_url"] = f"sqlite:///{(self.data_dir / 'ngshare.db').absolute()}"
        if self.storage_dir is None:
            updates["storage_dir"] = self.data_dir / "blobs"
        return self.model_copy(update=updates)

    def check(self) -> None:
        """Refuse combinations that are unsafe or incomplete, with a message naming the fix."""
        if self.auth is None:
            raise ValueError(
                "no authenticator configured: run under JupyterHub, or pass --token-file FILE, "
                "or --dev for a loopback-only development server"
            )
        if self.auth == "dev" and not is_loopback(self.host or ""):
            raise ValueError(f"--dev refuses to listen on {self.host!r}: use a loopback address")
        if self.storage == "s3" and not self.s3_bucket:
            raise ValueError("--storage s3 needs --s3-bucket")
        if self.auth == "token-file" and self.token_file is None:
            raise ValueError("--auth token-file needs --token-file FILE")
        if self.clock_file is not None and self.auth not in ("dev", "token-file"):
            raise ValueError(
                "--clock-file is for tests only and needs --dev or --auth token-file; "
                "it is refused under JupyterHub"
            )
        if self.auth == "hub" and not os.environ.get("JUPYTERHUB_API_TOKEN"):
            raise ValueError("--auth hub needs JUPYTERHUB_API_TOKEN and JUPYTERHUB_API_URL")

    @property
    def limits(self) -> Limits:
        return Limits(
            request_bytes=self.max_request_mib * MiB,
            file_bytes=self.max_file_mib * MiB,
            upload_bytes=self.max_upload_mib * MiB,
            files_per_upload=self.max_files_per_upload,
            course_quota_bytes=self.course_quota_mib * MiB,
        )


class Limits:
    """Size limits in bytes, as enforced by the routes."""

    def __init__(
        self,
        request_bytes: int,
        file_bytes: int,
        upload_bytes: int,
        files_per_upload: int,
        course_quota_bytes: int = 0,
    ) -> None:
        self.course_quota_bytes = course_quota_bytes
        self.request_bytes = request_bytes
        self.file_bytes = file_bytes
        self.upload_bytes = upload_bytes
        self.files_per_upload = files_per_upload


def is_loopback(host: str) -> bool:
    """True for localhost and addresses in 127.0.0.0/8 or ::1."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def reference_markdown() -> str:
    """The configuration reference in docs/configuration.md, generated from Settings."""
    lines = [
        "# Configuration reference",
        "",
        "Generated by `ngshare settings` from `ngshare.config.Settings`; a test keeps it in step.",
        "Every setting is a flag of `ngshare serve` and an environment variable; a flag wins.",
        "",
        "| flag | environment variable | default | meaning |",
        "| --- | --- | --- | --- |",
    ]
    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        shown = "" if default is None or default == [] else f"`{default}`"
        flag = "--" + name.replace("_", "-")
        if field.annotation is bool:
            flag = f"{flag} / --no-{flag[2:]}"
        lines.append(f"| `{flag}` | `NGSHARE_{name.upper()}` | {shown} | {field.description} |")
    lines += [
        "",
        "Under JupyterHub (a Hub-managed service) these standard variables are read as well:",
        "`JUPYTERHUB_API_TOKEN`, `JUPYTERHUB_API_URL`, `JUPYTERHUB_SERVICE_PREFIX`,",
        "`JUPYTERHUB_SERVICE_URL`, `JUPYTERHUB_CLIENT_ID`, `JUPYTERHUB_SERVICE_NAME`,",
        "`JUPYTERHUB_OAUTH_CALLBACK_URL` and `JUPYTERHUB_OAUTH_ACCESS_SCOPES`.",
        "",
    ]
    return "\n".join(lines)
