"""The common part of every ngshare exchange operation: where the service is, who
the user is, how errors become one clear line, and how local files are chosen.

Every operation subclasses `Exchange` (and nbgrader's abstract class for that
operation), so `c.Exchange.*` settings apply to all of them, exactly as with
nbgrader's filesystem exchange.
"""

from __future__ import annotations

import errno
import fnmatch
import hashlib
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from textwrap import dedent
from urllib.parse import urlsplit, urlunsplit

from dateutil.tz import gettz
from jupyter_core.paths import jupyter_data_dir
from nbgrader.exchange.abc import Exchange as ABCExchange
from nbgrader.exchange.abc import ExchangeError
from nbgrader.utils import parse_utc
from traitlets import Bool, Float, Integer, Unicode, default

from ngshare.client import ClientError, LocalFile, NgshareClient, scan_tree
from ngshare.client.errors import NOT_NGSHARE, UNAVAILABLE
from ngshare.client.known import KnownBlobs, beside
from ngshare.client.local import LINK_MIN, HashCache
from ngshare.errors import TokenNotForService
from ngshare.exchange.progress import TransferProgress

SERVER_TIMESTAMP = "%Y-%m-%d %H:%M:%S.%f"
SECRET_FILE = "submission_secret.txt"
TIMESTAMP_FILE = "timestamp.txt"


class Exchange(ABCExchange):
    """Settings shared by all operations (`c.Exchange.*`)."""

    ngshare_url = Unicode(
        "",
        help=dedent(
            """
            Base URL of the ngshare service, e.g. http://hub:8000/services/ngshare.
            Empty: the NGSHARE_URL environment variable, else the JupyterHub
            API URL's host with /services/<service_name>.
            """
        ),
    ).tag(config=True)

    service_name = Unicode(
        help="Name of the ngshare JupyterHub service, used to derive its URL from the Hub's."
    ).tag(config=True)

    @default("service_name")
    def _service_name_default(self) -> str:
        return os.environ.get("NGSHARE_SERVICE_NAME") or "ngshare"

    api_token = Unicode(
        "",
        help="Token for the service. Empty: NGSHARE_TOKEN, else JUPYTERHUB_API_TOKEN.",
    ).tag(config=True)

    dev_user = Unicode(
        "",
        help="Only for a development server (ngshare serve --dev): act as this user.",
    ).tag(config=True)

    timeout = Float(60.0, help="Seconds to wait for the service before giving up.").tag(config=True)

    retries = Integer(
        4, help="Retries (with exponential backoff) of requests that are safe to repeat."
    ).tag(config=True)

    cache = Unicode(
        "",
        help="Local cache of submissions, for nbgrader list --cached and fetch_feedback. "
        "Defaults to $JUPYTER_DATA_DIR/nbgrader_cache.",
    ).tag(config=True)

    @default("cache")
    def _cache_default(self) -> str:
        return os.path.join(jupyter_data_dir(), "nbgrader_cache")

    hash_cache = Unicode(
        "",
        help="File remembering the sha256 of files fetched or submitted (by path, size and "
        "times), so a submit does not re-read an unchanged dataset. Beside it, "
        "<name>.blobs.json remembers which files each course already holds, so a submit "
        "sends only the others, in one request. Defaults to "
        "$JUPYTER_DATA_DIR/ngshare/hashes.json; set to 'none' to keep both in memory only.",
    ).tag(config=True)

    @default("hash_cache")
    def _hash_cache_default(self) -> str:
        return os.path.join(jupyter_data_dir(), "ngshare", "hashes.json")

    link_identical_files = Bool(
        True,
        help="When collecting, a file of 1 MiB or more that several submissions share (the "
        "unchanged dataset) is written once and hard-linked into the other submissions, as "
        "uv and pnpm do, instead of copied: 200 copies of a 2 GB dataset would take 400 GB. "
        "Editing such a file in place changes it in every submission that shares it; set "
        "False to write a separate copy for each. Executable files are always copied.",
    ).tag(config=True)

    root = Unicode(
        "",
        help="Not used: the filesystem exchange's directory. Accepted so that a configuration "
        "or command line written for that exchange (c.Exchange.root) loads without a warning.",
    ).tag(config=True)

    path_includes_course = Bool(
        False,
        help=dedent(
            """
            Whether the path for fetching/submitting assignments should be
            prefixed with the course name: ./course123/ps1 instead of ./ps1.
            """
        ),
    ).tag(config=True)

    show_progress = Bool(
        True, help="Draw a progress bar for transfers when the terminal is interactive."
    ).tag(config=True)

    progress_min_bytes = Integer(
        8 * 1024 * 1024,
        help="Transfers at least this large are reported in the log (start, progress, end).",
    ).tag(config=True)

    _client: NgshareClient | None = None
    _courses: dict[str, str] | None = None

    # Connection

    def service_url(self) -> str:
        if self.ngshare_url:
            return self.ngshare_url.rstrip("/")
        if os.environ.get("NGSHARE_URL"):
            return os.environ["NGSHARE_URL"].rstrip("/")
        hub_api = os.environ.get("JUPYTERHUB_API_URL")
        if hub_api:
            parts = urlsplit(hub_api)
            prefix = parts.path.rstrip("/")
            if prefix.endswith("/hub/api"):
                prefix = prefix[: -len("/hub/api")]
            path = f"{prefix}/services/{self.service_name}"
            return urlunsplit((parts.scheme, parts.netloc, path, "", ""))
        self.fail(
            "Cannot find the ngshare service: set c.Exchange.ngshare_url in "
            "nbgrader_config.py or the NGSHARE_URL environment variable"
        )
        raise AssertionError("unreachable")

    def token(self) -> str | None:
        return (
            self.api_token
            or os.environ.get("NGSHARE_TOKEN")
            or os.environ.get("JUPYTERHUB_API_TOKEN")
            or None
        )

    @property
    def client(self) -> NgshareClient:
        if self._client is None:
            token = self.token()
            if token is None and not self.dev_user:
                self.fail(
                    "No token for the ngshare service: JUPYTERHUB_API_TOKEN is not set "
                    "(run nbgrader inside your JupyterHub server, or set c.Exchange.api_token)"
                )
            progress = TransferProgress(self.log, self.show_progress, self.progress_min_bytes)
            cache = None if self.hash_cache == "none" else Path(self.hash_cache)
            self._client = NgshareClient(
                self.service_url(),
                token,
                user=self.dev_user or None,
                timeout=self.timeout,
                retries=self.retries,
                progress=progress,
                hashes=HashCache(cache),
                known=KnownBlobs(beside(cache) if cache else None),
                link_min=LINK_MIN if self.link_identical_files else None,
            )
        return self._client

    def start(self):
        try:
            return super().start()
        except ClientError as exc:
            self.fail(self.explain(exc))
        except OSError as exc:
            self.fail(self.explain_os(exc))
        finally:
            if self._client is not None:
                self._client.close()
                self._client = None

    # Errors

    def record(self, course: str, action: str, assignment: str, **fields: object) -> None:
        """Add a finished download to the course's audit history.

        The download itself succeeded, so a failure here is only logged.
        """
        try:
            self.client.report(course, action, assignment, **fields)  # type: ignore[arg-type]
        except ClientError as exc:
            self.log.warning("Could not record the %s in the audit history: %s", action, exc)

    @contextmanager
    def attempt(self, action: str, course: str | None = None) -> Iterator[None]:
        """Turn a failed call into one line: `Cannot <action>: <why and what to do>`."""
        try:
            yield
        except ClientError as exc:
            self.fail(f"Cannot {action}: {self.explain(exc, course)}")
        except OSError as exc:
            self.fail(f"Cannot {action}: {self.explain_os(exc)}")

    def explain(self, exc: ClientError, course: str | None = None) -> str:
        message = " ".join(str(exc.message).split())
        if exc.status == 0:
            unreached = message.startswith("Cannot reach the ngshare server at ")
            detail = message.split(": ", 1)[-1] if unreached else message  # the URL is below
            return (
                f"the ngshare service at {self.service_url()} cannot be reached ({detail}); "
                "check c.Exchange.ngshare_url / NGSHARE_URL, or try again later"
            )
        if exc.reason == NOT_NGSHARE:
            return f"{message} (c.Exchange.ngshare_url / NGSHARE_URL)"
        if exc.reason == UNAVAILABLE:
            return message
        if exc.status == 401:
            return (
                "the ngshare service refused your token; log in to JupyterHub again "
                "(or check c.Exchange.api_token / JUPYTERHUB_API_TOKEN)"
            )
        if exc.status == 403 and exc.reason == TokenNotForService.reason:
            return (
                "your JupyterHub token does not give access to the ngshare service (it needs"
                " the access:services scope); ask your hub administrator to grant it to users"
            )
        if exc.status == 403:
            where = f" in course {course}" if course else ""
            return (
                f"permission denied by ngshare: you are not enrolled{where}, or this needs "
                "an instructor; ask your instructor or hub administrator"
            )
        if exc.status == 413:
            return f"{message} (a limit of the ngshare service)"
        if exc.status == 507:
            return f"{message} (the ngshare service is out of storage; tell your administrator)"
        if exc.status in (404, 400, 409):
            return message
        return f"the ngshare service answered HTTP {exc.status}: {message}"

    @staticmethod
    def explain_os(exc: OSError) -> str:
        where = f" ({exc.filename})" if exc.filename else ""
        if exc.errno == errno.ENOSPC:
            return f"no space left on the local disk{where}; free some space and try again"
        return f"{exc.strerror or exc}{where}"

    # Courses

    def my_courses(self) -> dict[str, str]:
        """The caller's courses and their role in each (one request, then cached)."""
        if self._courses is None:
            with self.attempt("list your courses"):
                self._courses = {c["name"]: c["role"] for c in self.client.courses()}
        return self._courses

    def released_names(self, course: str) -> list[str]:
        with self.attempt(f"list the assignments of course {course}", course):
            return [a["name"] for a in self.client.assignments(course)]

    def resolve_course(self, assignment: str | None, local: Callable[[str], bool] | None = None):
        """The course of a student operation: the configured one, or the only one that fits.

        With `course_id` unset, a student's courses are searched: the one
        course, or the one where `assignment` is released (and, for `local`,
        where the local directory exists).
        """
        if self.coursedir.course_id:
            return self.coursedir.course_id
        courses = sorted(self.my_courses())
        if not courses:
            self.fail(f"You are in no course on the ngshare service at {self.service_url()}")
        if len(courses) == 1:
            return courses[0]
        if not assignment:
            self.fail("No course id specified. Re-run with --course flag.")
        found = [c for c in courses if (local is None or local(c))]
        found = [c for c in found if assignment in self.released_names(c)]
        if len(found) == 1:
            return found[0]
        if not found:
            self.fail(f"Assignment {assignment} is in none of your courses ({', '.join(courses)})")
        self.fail(
            f"Assignment {assignment} is in several of your courses ({', '.join(found)}); "
            "choose one with --course"
        )
        raise AssertionError("unreachable")

    def require_course(self) -> str:
        if not self.coursedir.course_id:
            self.fail("No course id specified. Re-run with --course flag.")
        return self.coursedir.course_id

    # Local paths

    def local_name(self, name: str, what: str) -> str:
        """A name from the server or the command line that becomes one path component."""
        if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
            self.fail(f"Refusing to use {name!r} as a {what} directory name")
        return name

    def assignment_root(self, course: str, assignment: str) -> str:
        """`<assignment_dir>/[<course>/]<assignment>`, absolute."""
        parts = [self.assignment_dir]
        if self.path_includes_course:
            parts.append(self.local_name(course, "course"))
        parts.append(self.local_name(assignment, "assignment"))
        return os.path.abspath(os.path.join(*parts))

    def scan(self, root: str, skip: tuple[str, ...] = ()) -> list[LocalFile]:
        """The files below `root` to upload, chosen like nbgrader's filesystem exchange.

        CourseDirectory.ignore globs drop files and prune whole directories;
        include globs and max_file_size (kB; too large: a warning) drop files;
        max_dir_size (kB) caps the total. `skip` names top-level files to leave out
        (a name ending in `/`: a top-level directory).
        """
        coursedir = self.coursedir
        include = list(coursedir.include or [])
        max_file = coursedir.max_file_size

        def keep(relative: str, size: int) -> bool:
            name = relative.rsplit("/", 1)[-1]
            if relative in skip or relative.split("/", 1)[0] + "/" in skip:
                return False
            if include and not any(fnmatch.fnmatch(name, glob) for glob in include):
                self.log.debug(
                    "Ignoring non included file '%s' (see config option CourseDirectory.include)",
                    relative,
                )
                return False
            if max_file and size > 1000 * max_file:
                self.log.warning(
                    "Ignoring file too large '%s' (see config option CourseDirectory."
                    "max_file_size)",
                    os.path.join(root, relative),
                )
                return False
            return True

        files = scan_tree(
            Path(root), ignore=list(coursedir.ignore or []), include=keep, cache=self.client.hashes
        )
        total = sum(f.size for f in files)
        limit = 1000 * coursedir.max_dir_size if coursedir.max_dir_size else None
        if limit is not None and total > limit:
            self.fail(
                f"Directory size is too big. Size is {total}, maximum size is {limit} "
                "(see config option CourseDirectory.max_dir_size)"
            )
        return files

    def ignored(self, relative: str) -> bool:
        """Whether a path from the server falls under CourseDirectory.ignore."""
        patterns = list(self.coursedir.ignore or [])
        return any(fnmatch.fnmatch(part, p) for part in relative.split("/") for p in patterns)

    # Timestamps

    def server_time(self, timestamp: str) -> datetime:
        """The server's timestamp (`%Y-%m-%d %H:%M:%S.%f`, UTC) as an aware datetime."""
        return datetime.strptime(timestamp, SERVER_TIMESTAMP).replace(tzinfo=UTC)

    def local_timestamp(self, timestamp: str) -> str:
        """The server's timestamp in Exchange.timezone and Exchange.timestamp_format."""
        tz = gettz(self.timezone)
        if tz is None:
            self.fail(f"Invalid timezone: {self.timezone}")
        return self.server_time(timestamp).astimezone(tz).strftime(self.timestamp_format)

    def same_time(self, local: str, server: str) -> bool:
        try:
            return parse_utc(local) == self.server_time(server).replace(tzinfo=None)
        except (ValueError, OverflowError):
            return False


def secret_sha256(directory: str) -> str | None:
    """sha256 of the directory's submission_secret.txt, which ties a copy to its submission."""
    path = os.path.join(directory, SECRET_FILE)
    if not os.path.isfile(path):
        return None
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def manifest_sha(files: list[dict], path: str) -> str | None:
    for entry in files:
        if entry["path"] == path:
            return entry["sha256"]
    return None


__all__ = ["Exchange", "ExchangeError"]
