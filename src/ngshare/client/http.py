"""NgshareClient: the v2 API over httpx, with streaming, resuming and retries.

Uploads: scan the tree (one hashing pass), ask which blobs the server lacks
(one request for the whole tree), stream only those from disk, resuming an
interrupted one at the offset the server reports, then commit the manifest.
Downloads: fetch the manifest, stream each blob to a temporary file while
hashing it, resume with a Range request after a dropped connection, and move
the verified tree into place. Idempotent requests are retried with backoff;
submissions carry an Idempotency-Key so a retried commit is not doubled.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import secrets
import shutil
import ssl
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple, TypeVar
from urllib.parse import quote

import httpx

from ngshare.checksums import DownloadCheck
from ngshare.client import batches, rawhttp
from ngshare.client.errors import (
    NOT_NGSHARE,
    OLDER_SERVICE,
    UNAVAILABLE,
    ClientError,
    json_answer,
    not_ngshare,
)
from ngshare.client.inline import ACCEPT, RecentBlobs, read_answer
from ngshare.client.known import KnownBlobs
from ngshare.client.local import BackgroundSink, HashCache, InlineSink, LocalCopies
from ngshare.client.trees import LocalFile, NoProgress, Progress, safe_target, scan_tree

RETRY_STATUSES = {502, 503, 504}
T = TypeVar("T")
log = logging.getLogger(__name__)
UPLOAD_CHUNK = 4 * 1024 * 1024
HASH_ALONGSIDE = 64 * 1024 * 1024  # larger downloads are written and hashed on a second thread
# blobs this large are read past httpx (`rawhttp`, a connection of their own); smaller
# ones travel in batches or over httpx's kept-alive connections
FAST_DOWNLOAD = batches.SMALL_FILE
FAST_UPLOAD = batches.SMALL_FILE  # larger blobs go up alone, sent by sendfile
# Uploads this small are sent without first asking which blobs are missing;
# files the client knows the server holds (`KnownBlobs`) are left out first,
# so the rest is new to the server unless another user sent the same bytes.
ASK_FIRST = 64 * 1024
ASK_FIRST_KNOWING = 2 * 1024 * 1024  # when the client knows what this course holds
# a class's feedback in one request or a few, each all or none (the server takes up to 5000)
FEEDBACK_SETS_PER_REQUEST = 250


@functools.cache
def tls_context() -> ssl.SSLContext:
    """One default TLS context per process: building one reads the CA bundle (~30 ms),
    which a program making many clients (the benchmark's 200 students) paid each time."""
    return httpx.create_ssl_context()


def _q(value: str) -> str:
    return quote(value, safe="")


class FeedbackFiles(NamedTuple):
    """One submission's feedback, for `NgshareClient.put_feedback_many`."""

    student: str
    submission_id: int
    files: list[LocalFile]


class NgshareClient:
    """A session with one ngshare server as one user.

    `url` is the service base including its prefix (e.g.
    `http://hub/services/ngshare`); the v2 API lives under `<url>/v2/`.
    Give `token` for JupyterHub / token-file servers, or `user` for a dev server.
    `hashes` remembers file hashes (pass a HashCache with a path to keep them
    between processes); by default they are kept in memory for this client.
    `known` remembers which blobs each course holds (a KnownBlobs with a
    path keeps them between processes), so a submit can commit in one request.
    `transport` replaces the default (retrying, TLS-verifying) httpx transport.
    `fast_downloads`: read blobs of FAST_DOWNLOAD bytes or more with
    `ngshare.client.rawhttp` (straight into the download's buffers) instead of
    httpx; by default only without a custom `transport`, which would not see
    them, and when no proxy applies. They are counted in `fast_requests` and
    `fast_received` (bytes).
    `fast_uploads`: likewise, send blobs of FAST_UPLOAD bytes or more that go
    up alone (a PUT each) by sendfile with `rawhttp.put_file`; counted in
    `fast_requests` and `fast_sent`.
    `link_min`: a file this large or larger that the client already wrote is
    hard-linked, not copied, where another tree needs the same bytes (see
    `LocalCopies`; the nbgrader plugin's collect uses 1 MiB).
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        user: str | None = None,
        timeout: float = 60.0,
        retries: int = 4,
        backoff: float = 0.5,
        progress: Progress | None = None,
        hashes: HashCache | None = None,
        known: KnownBlobs | None = None,
        transport: httpx.BaseTransport | None = None,
        link_min: int | None = None,
        fast_downloads: bool | None = None,
        fast_uploads: bool | None = None,
    ) -> None:
        headers = {"Authorization": f"token {token}"} if token else {}
        self.params = {"user": user} if user else {}
        self.retries = retries
        self.backoff = backoff
        self.progress = progress or NoProgress()
        self.hashes = hashes if hashes is not None else HashCache()
        self.known = known if known is not None else KnownBlobs()
        # files this client wrote and verified, copied instead of downloaded again
        # (the same data file in every student's submission crosses the network once)
        self.local_copies = LocalCopies(link_min)
        self.recent = RecentBlobs()  # small files that came with a manifest (`manifest`)
        self._prefetched: list[Path] = []
        self.bulk_feedback = True  # until a server answers that it has no such route
        self.service_url = url.rstrip("/")  # the service's own; its v2 API is below it
        self.http = httpx.Client(
            base_url=self.service_url + "/v2/",
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=10.0),
            transport=transport or httpx.HTTPTransport(retries=2, verify=tls_context()),
        )
        plain = transport is None and not rawhttp.proxied(self.http.base_url)
        self.fast_downloads = plain if fast_downloads is None else fast_downloads
        self.fast_uploads = plain if fast_uploads is None else fast_uploads
        self.fast_requests = self.fast_received = self.fast_sent = 0

    def close(self) -> None:
        self.hashes.save()
        self.known.save()
        self.http.close()

    def scan(self, root: Path, **scan: Any) -> list[LocalFile]:
        """`scan_tree` with this client's hash cache (unchanged files are not read again)."""
        return scan_tree(root, cache=self.hashes, **scan)

    def __enter__(self) -> NgshareClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # Plumbing

    def request(self, method: str, path: str, *, idempotent: bool = True, **kwargs: Any) -> Any:
        """Send a request and return the JSON answer; raise ClientError on failure."""
        return json_answer(self._send(method, path, idempotent=idempotent, **kwargs))

    def _send(self, method: str, path: str, *, idempotent: bool, **kwargs: Any) -> httpx.Response:
        params = {**self.params, **kwargs.pop("params", {})}
        try:
            return self._retrying(
                f"Cannot reach the ngshare server at {self.service_url}",
                lambda: _checked(self.http.request(method, path, params=params, **kwargs)),
                idempotent=idempotent,
            )
        except ClientError as exc:
            raise self._older_service(exc) or exc from None

    def _older_service(self, exc: ClientError) -> ClientError | None:
        """When a v2 path was not found and the same service answers the v1 API, the
        service is an older ngshare (0.6 or before, v1 only): the error to raise
        instead of `exc`'s "check the URL". None otherwise."""
        if exc.reason != NOT_NGSHARE or exc.status != 404:
            return None
        base = self.service_url
        try:
            body = self.http.get(f"{base}/courses", params=self.params).json()
        except (httpx.HTTPError, ValueError):
            return None
        if not isinstance(body, dict) or "success" not in body:
            return None
        return ClientError(
            f"The ngshare service at {base} is an older version that has only the v1 API"
            " (ngshare 0.6 or before, made for the ngshare_exchange plugin); this client needs"
            " the v2 API: upgrade the service, or keep ngshare_exchange until then",
            404,
            OLDER_SERVICE,
        )

    def _retrying(
        self,
        failure: str,
        attempt: Callable[[], T],
        *,
        idempotent: bool = True,
        before_retry: Callable[[], object] | None = None,
    ) -> T:
        """`attempt()` until it succeeds, again after a dropped connection or a 502-504
        answer, with exponential backoff, `retries` more times at most.

        A request that is not idempotent is sent again only when it never left
        (the connection could not be made): the server may have acted on it.
        `before_retry` runs before each new attempt (to ask where to resume).
        """
        for number in range(self.retries + 1):
            try:
                return attempt()
            except (httpx.TransportError, _Unavailable) as exc:
                unsent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
                if number == self.retries or not (idempotent or unsent):
                    if isinstance(exc, _Unavailable):
                        raise exc.error from None
                    raise ClientError(f"{failure}: {exc}") from exc
            self._sleep(number)
            if before_retry is not None:
                before_retry()
        raise AssertionError("unreachable")

    def _sleep(self, attempt: int) -> None:
        time.sleep(self.backoff * (2**attempt))

    # Reading

    def whoami(self) -> dict:
        """`{"username": ..., "admin": ...}` of the caller (the service's `<prefix>me`)."""
        return self.request("GET", f"{self.service_url}/me")

    def courses(self) -> list[dict]:
        return self.request("GET", "courses")["courses"]

    def assignments(self, course: str) -> list[dict]:
        return self.request("GET", f"courses/{_q(course)}/assignments")["assignments"]

    def assignment(
        self, course: str, name: str, version: int | None = None, *, inline: bool = False
    ) -> dict:
        """A release's manifest; `inline` for its small files too, ahead of a download."""
        params = {"version": version} if version else {}
        path = f"courses/{_q(course)}/assignments/{_q(name)}"
        return self.manifest(path, params=params, inline=inline)

    def manifest(self, path: str, *, params: dict | None = None, inline: bool = False) -> dict:
        """GET a manifest answer. With `inline`, ask for its small files in the same
        answer (`ngshare.client.inline`): they are kept in `recent`, where the
        download that follows finds them."""
        if not inline:
            return self.request("GET", path, params=params or {})
        response = self._send(
            "GET", path, idempotent=True, params=params or {}, headers={"Accept": ACCEPT}
        )
        answer, blobs = read_answer(response)
        self.recent.add(blobs)
        return answer

    def submissions(
        self, course: str, assignment: str, *, latest: bool = False, files: bool = False
    ) -> list[dict]:
        """All submissions (instructors); `files=True` adds each one's and its feedback's files."""
        path = f"courses/{_q(course)}/assignments/{_q(assignment)}/submissions"
        params = {"latest": str(latest).lower()}
        if files:
            params["files"] = "true"
        return self.request("GET", path, params=params)["submissions"]

    def student_submissions(
        self,
        course: str,
        assignment: str,
        student: str,
        *,
        files: bool = False,
        inline: bool = False,
    ) -> list[dict]:
        """A student's submissions; `files=True` adds each one's and its feedback's files,
        and `inline` the small feedback files themselves (`manifest`), ahead of a download."""
        path = f"courses/{_q(course)}/assignments/{_q(assignment)}/submissions/{_q(student)}"
        params = {"files": "true"} if files else {}
        return self.manifest(path, params=params, inline=inline)["submissions"]

    def submission(self, course: str, assignment: str, student: str, submission_id: int) -> dict:
        return self.request(
            "GET", self._submission_path(course, assignment, student, submission_id)
        )

    def feedback(
        self,
        course: str,
        assignment: str,
        student: str,
        submission_id: int,
        *,
        inline: bool = False,
    ) -> dict:
        """A feedback set's manifest; `inline` for its small files too, ahead of a download."""
        path = self._submission_path(course, assignment, student, submission_id) + "/feedback"
        return self.manifest(path, inline=inline)

    @staticmethod
    def _submission_path(course: str, assignment: str, student: str, submission_id: int) -> str:
        return (
            f"courses/{_q(course)}/assignments/{_q(assignment)}/submissions/"
            f"{_q(student)}/{int(submission_id)}"
        )

    # Uploading

    def missing(self, course: str, hashes: list[str]) -> set[str]:
        path = f"courses/{_q(course)}/blobs/missing"
        missing = set(self.request("POST", path, json={"sha256": hashes})["missing"])
        self._learn(course, [sha for sha in hashes if sha not in missing])
        return missing

    def _scope(self, course: str) -> str:
        return f"{self.http.base_url}courses/{_q(course)}"

    def _learn(self, course: str, hashes: list[str]) -> None:
        """Remember that the course holds these blobs (see `KnownBlobs`)."""
        if hashes:
            self.known.add(self._scope(course), hashes)

    def upload_files(self, course: str, files: list[LocalFile], label: str = "upload") -> int:
        """Upload the blobs of `files` the server lacks; returns the bytes sent.

        Small files travel in batches; a tree smaller than ASK_FIRST is sent
        without first asking which blobs are missing (the server skips those
        it holds), which saves a round trip for feedback and small notebooks.
        """
        todo = self._needed(course, files)
        self.progress.start(sum(f.size for f in todo), len(todo), label)
        try:
            return self._send_blobs(course, todo)
        finally:
            self.progress.finish()

    def _needed(self, course: str, files: list[LocalFile]) -> list[LocalFile]:
        """The distinct files whose blobs the server lacks, as far as the client can tell.

        Blobs known to be in the course are left out unasked; the rest, if
        small enough, is taken as missing without asking (it almost always
        is: a student's edited notebooks); otherwise the server is asked.
        """
        known = self.known.known(self._scope(course))
        unique = {f.sha256: f for f in files if f.sha256 not in known}
        small = all(f.size <= batches.SMALL_FILE for f in unique.values())
        limit = ASK_FIRST_KNOWING if known else ASK_FIRST
        if small and sum(f.size for f in unique.values()) <= limit:
            return list(unique.values())
        wanted = self.missing(course, list(unique)) if unique else set()
        return [unique[sha] for sha in unique if sha in wanted]

    def _send_blobs(self, course: str, todo: list[LocalFile]) -> int:
        """Small files in batches, then each large one by itself; returns the bytes sent."""
        sent = 0
        grouped = [f for f in todo if f.size <= batches.SMALL_FILE]
        for batch in batches.group(grouped, lambda f: f.size):
            sent += self._upload_batch(course, batch)
            self._learn(course, [f.sha256 for f in batch])
        for item in todo:
            if item.size > batches.SMALL_FILE:
                sent += self._upload_blob(course, item)
                self._learn(course, [item.sha256])
                self.progress.file_done(item.path)
        return sent

    def commit_files(
        self,
        method: str,
        path: str,
        course: str,
        files: list[LocalFile],
        label: str,
        headers: dict[str, str] | None = None,
        head: dict | None = None,
    ) -> dict:
        """Upload what the server lacks and commit `files` as the tree at `path`.

        The last batch of small files travels in the commit's own request (a
        bundle, ngshare.api.v2.bundles): a submission of changed notebooks
        beside an unchanged dataset is two requests (which blobs are missing;
        the bundle), a tiny one a single request. Should the server still lack
        a blob (collected meanwhile), it says which; they are sent and the
        head alone is committed. Retried whole: pass an Idempotency-Key in
        `headers` where a repeat would otherwise make a second tree.

        `head`: the request's JSON (default: the manifest of `files`); a bulk
        commit names several trees there, and `files` holds all their files.
        """
        head = head if head is not None else {"files": [f.manifest_entry() for f in files]}
        todo = self._needed(course, files)
        small = [f for f in todo if f.size <= batches.SMALL_FILE]
        groups = batches.group(small, lambda f: f.size)
        carried = groups.pop() if groups else []
        early = [f for group in groups for f in group]
        early += [f for f in todo if f.size > batches.SMALL_FILE]
        self.progress.start(sum(f.size for f in todo), len(todo), label)
        try:
            self._send_blobs(course, early)
            answer = self._bundle(method, path, head, carried, label, headers or {})
        except ClientError as exc:
            if exc.reason != "blobs_missing":
                raise
            lacking = exc.extra.get("missing", [])
            self.known.forget(self._scope(course), lacking)
            unique = {f.sha256: f for f in files}
            self._send_blobs(course, [unique[sha] for sha in lacking])
            answer = self.request(method, path, json=head, headers=headers)
        finally:
            self.progress.finish()
        self._learn(course, [f.sha256 for f in files])
        return answer

    def _bundle(
        self,
        method: str,
        path: str,
        head: dict,
        files: list[LocalFile],
        label: str,
        headers: dict[str, str],
    ) -> dict:
        """POST/PUT the head with `files`' bytes; retried whole (with the same headers)."""

        def attempt() -> dict:
            length, body = batches.upload_body(files, self.progress.advance, head)
            sent = {
                **headers,
                "Content-Type": batches.BUNDLE_MEDIA_TYPE,
                "Content-Length": str(length),
            }
            response = self.http.request(
                method, path, params=self.params, content=body, headers=sent
            )
            return json_answer(_checked(response))

        answer = self._retrying(f"{label.capitalize()} failed", attempt)
        for item in files:
            self.progress.file_done(item.path)
        return answer

    def _upload_batch(self, course: str, files: list[LocalFile]) -> int:
        """POST several small blobs in one body; retried whole (blobs are idempotent)."""
        path = f"courses/{_q(course)}/blobs"

        def attempt() -> None:
            length, body = batches.upload_body(files, self.progress.advance)
            headers = {"Content-Type": batches.MEDIA_TYPE, "Content-Length": str(length)}
            _checked(self.http.post(path, params=self.params, content=body, headers=headers))

        self._retrying(f"Upload of {len(files)} files failed", attempt)
        for item in files:
            self.progress.file_done(item.path)
        return sum(item.size for item in files)

    def _upload_blob(self, course: str, item: LocalFile) -> int:
        path = f"courses/{_q(course)}/blobs/{item.sha256}"
        offset = 0

        def resume() -> None:  # where the server's copy ends (all of it: an empty PUT)
            nonlocal offset
            offset = self.request("GET", path + "/upload")["offset"]

        return self._retrying(
            f"Upload of {item.path} failed",
            lambda: self._put_from(path, item, offset),
            before_retry=resume,
        )

    def _put_from(self, path: str, item: LocalFile, offset: int) -> int:
        params = {**self.params, "size": item.size, "offset": offset}
        if self.fast_uploads and item.size - offset >= FAST_UPLOAD:
            response = self._put_fast(path, params, item.source, offset, item.size - offset)
        else:
            response = self.http.put(
                path,
                params=params,
                content=self._read_from(item.source, offset),
                headers={"Content-Length": str(item.size - offset)},
            )
        if response.status_code == 409:  # a body that is not ours (a proxy's) raises below
            error = _error(response)
            if isinstance(error.extra.get("offset"), int):
                return self._put_from(path, item, error.extra["offset"])
            if error.reason == "upload_busy":
                # the server still holds an earlier attempt of ours, cut on the way, that
                # it has not seen end yet: wait as for a 503, then ask where it stopped
                raise _Unavailable(error)
            raise error
        _checked(response)
        return item.size - offset

    def _put_fast(
        self, path: str, params: dict, source: Path, offset: int, count: int
    ) -> httpx.Response:
        """`_put_from`'s PUT sent with `rawhttp`: the kernel sends the file's pages."""
        url = self.http.base_url.join(path).copy_merge_params(params)
        headers = {**self.http.headers, "Content-Type": "application/octet-stream"}
        self.fast_requests += 1
        return rawhttp.put_file(
            url,
            headers,
            source,
            offset,
            count,
            self.http.timeout.write,
            tls_context(),
            self._advance_sent,
        )

    def _advance_sent(self, nbytes: int) -> None:
        self.fast_sent += nbytes
        self.progress.advance(nbytes)

    def _read_from(self, source: Path, offset: int) -> Iterator[bytes]:
        with source.open("rb") as handle:
            handle.seek(offset)
            while chunk := handle.read(UPLOAD_CHUNK):
                self.progress.advance(len(chunk))
                yield chunk

    def release(self, course: str, name: str, root: Path, **scan: Any) -> dict:
        return self.release_files(course, name, self.scan(root, **scan))

    def release_files(self, course: str, name: str, files: list[LocalFile]) -> dict:
        """Release `files` as the assignment's next version (unless identical to the current)."""
        path = f"courses/{_q(course)}/assignments/{_q(name)}"
        return self.commit_files("PUT", path, course, files, f"release {name}")

    def withdraw(self, course: str, name: str) -> dict:
        """Withdraw the current release; versions and submissions are kept."""
        return self.request("DELETE", f"courses/{_q(course)}/assignments/{_q(name)}")

    def submit(self, course: str, assignment: str, root: Path, **scan: Any) -> dict:
        return self.submit_files(course, assignment, self.scan(root, **scan))

    def submit_files(self, course: str, assignment: str, files: list[LocalFile]) -> dict:
        """Submit `files`; one Idempotency-Key for all retries, so a retry is not a second one."""
        return self.commit_files(
            "POST",
            f"courses/{_q(course)}/assignments/{_q(assignment)}/submissions",
            course,
            files,
            f"submit {assignment}",
            headers={"Idempotency-Key": secrets.token_hex(16)},
        )

    def put_feedback(
        self, course: str, assignment: str, student: str, submission_id: int, root: Path
    ) -> dict:
        return self.put_feedback_files(course, assignment, student, submission_id, self.scan(root))

    def put_feedback_files(
        self, course: str, assignment: str, student: str, submission_id: int, files: list[LocalFile]
    ) -> dict:
        path = self._submission_path(course, assignment, student, submission_id) + "/feedback"
        return self.commit_files("PUT", path, course, files, f"feedback {student}")

    def put_feedback_many(
        self,
        course: str,
        assignment: str,
        sets: list[FeedbackFiles],
        per_request: int = FEEDBACK_SETS_PER_REQUEST,
    ) -> list[dict]:
        """Release many submissions' feedback: `per_request` sets per request, each
        request all or none. Returns one answer per set (student, submission_id,
        updated_at, changed), in order.

        A server older than the bulk route (the hub's service upgraded after the
        notebook images) gets one request per set instead; `changed` is then None.
        """
        released: list[dict] = []
        for start in range(0, len(sets), per_request):
            chunk = sets[start : start + per_request]
            if self.bulk_feedback:
                try:
                    released += self._feedback_chunk(course, assignment, chunk)
                    continue
                except ClientError as exc:
                    if not (exc.status == 404 and exc.reason == "http"):  # not a missing route
                        raise
                    self.bulk_feedback = False
            released += [self._feedback_one(course, assignment, item) for item in chunk]
        return released

    def _feedback_chunk(self, course: str, assignment: str, sets: list[FeedbackFiles]) -> list:
        head = {
            "feedback": [
                {
                    "student": s.student,
                    "submission_id": s.submission_id,
                    "files": [f.manifest_entry() for f in s.files],
                }
                for s in sets
            ]
        }
        files = [f for s in sets for f in s.files]
        path = f"courses/{_q(course)}/assignments/{_q(assignment)}/feedback"
        label = f"feedback for {len(sets)} submissions"
        return self.commit_files("POST", path, course, files, label, head=head)["feedback"]

    def _feedback_one(self, course: str, assignment: str, item: FeedbackFiles) -> dict:
        answer = self.put_feedback_files(
            course, assignment, item.student, item.submission_id, item.files
        )
        return {
            "student": item.student,
            "submission_id": item.submission_id,
            "updated_at": answer["updated_at"],
            "changed": None,
        }

    def withdraw_feedback(
        self, course: str, assignment: str, student: str, submission_id: int
    ) -> dict:
        path = self._submission_path(course, assignment, student, submission_id) + "/feedback"
        return self.request("DELETE", path)

    # Course policies (docs/policies.md)

    def _assignment_path(self, course: str, assignment: str) -> str:
        return f"courses/{_q(course)}/assignments/{_q(assignment)}"

    def settings(self, course: str, assignment: str) -> dict:
        return self.request("GET", self._assignment_path(course, assignment) + "/settings")

    def change_settings(self, course: str, assignment: str, **changes: Any) -> dict:
        """PATCH the settings given (state, visible_at, due_at, timezone,
        late_window_seconds, max_submissions, solutions); the others stay."""
        path = self._assignment_path(course, assignment) + "/settings"
        return self.request("PATCH", path, json=changes)

    def extensions(self, course: str, assignment: str) -> list[dict]:
        return self.request("GET", self._assignment_path(course, assignment) + "/extensions")

    def extend(
        self,
        course: str,
        assignment: str,
        student: str,
        *,
        due_at: str | None = None,
        extra_seconds: int | None = None,
    ) -> dict:
        path = self._assignment_path(course, assignment) + f"/extensions/{_q(student)}"
        return self.request("PUT", path, json={"due_at": due_at, "extra_seconds": extra_seconds})

    def remove_extension(self, course: str, assignment: str, student: str) -> dict:
        path = self._assignment_path(course, assignment) + f"/extensions/{_q(student)}"
        return self.request("DELETE", path)

    def put_solutions_files(self, course: str, assignment: str, files: list[LocalFile]) -> dict:
        path = self._assignment_path(course, assignment) + "/solutions"
        return self.commit_files("PUT", path, course, files, f"solutions {assignment}")

    def put_solutions(self, course: str, assignment: str, root: Path, **scan: Any) -> dict:
        return self.put_solutions_files(course, assignment, self.scan(root, **scan))

    def solutions(self, course: str, assignment: str, *, inline: bool = False) -> dict:
        """The solutions' manifest, once the assignment's `solutions` setting allows it;
        `inline` for its small files too, ahead of a download."""
        path = self._assignment_path(course, assignment) + "/solutions"
        return self.manifest(path, inline=inline)

    def withdraw_solutions(self, course: str, assignment: str) -> dict:
        return self.request("DELETE", self._assignment_path(course, assignment) + "/solutions")

    # Downloading

    def download_tree(
        self,
        course: str,
        files: list[dict],
        dest: Path,
        *,
        replace: bool = False,
        label: str = "download",
        extra: dict[str, bytes] | None = None,
    ) -> list[Path]:
        """Write the manifest `files` into a new directory `dest`, verified, all or nothing.

        `extra` maps relative paths to bytes written beside the files before the
        tree is moved into place. With `replace`, an existing `dest` is swapped
        out only once the new tree is complete.
        """
        dest = Path(dest)
        if dest.is_symlink() or (dest.exists() and not replace):
            raise ClientError(f"{dest} already exists")
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
        self.progress.start(sum(f["size"] for f in files), len(files), label)
        try:
            written = self._fetch_all(course, [(e, safe_target(staging, e["path"])) for e in files])
            for relative, content in (extra or {}).items():
                target = safe_target(staging, relative)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(content)
            self._swap(staging, dest)
            self.local_copies.moved(staging, dest)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        finally:
            self.progress.finish()
        final = [dest / path.relative_to(staging) for path in written]
        for entry, path in zip(files, final, strict=True):
            self.hashes.put(path, entry["sha256"])
        return final

    def download_trees(
        self, course: str, manifests: list[list[dict]], into: Path, *, label: str = "download"
    ) -> None:
        """Fetch the blobs of several manifests ahead, each distinct one once, in batches.

        For collecting a class: 200 submissions that share a dataset move the
        dataset once and the notebooks in a few requests. The blobs wait in a
        temporary directory below `into` (put it on the trees' filesystem, so
        a blob's first use is a rename); write each tree with `download_tree`
        afterwards, then call `forget_prefetched`.
        """
        wanted: dict[str, dict] = {}
        for files in manifests:
            for entry in files:
                if not self._holds(entry["sha256"], entry["size"]):
                    wanted.setdefault(entry["sha256"], entry)
        if not wanted:
            return
        Path(into).mkdir(parents=True, exist_ok=True)
        store = Path(tempfile.mkdtemp(prefix=".ngshare-blobs-", dir=into))
        self._prefetched.append(store)
        self.progress.start(sum(e["size"] for e in wanted.values()), len(wanted), label)
        try:
            self._fetch_all(course, [(e, store / sha) for sha, e in wanted.items()])
            for sha256 in wanted:
                self.local_copies.add(sha256, store / sha256, spare=True)
        finally:
            self.progress.finish()

    def forget_prefetched(self) -> None:
        """Remove the blobs `download_trees` kept once the trees are written."""
        for store in self._prefetched:
            shutil.rmtree(store, ignore_errors=True)
        self._prefetched.clear()

    def _fetch_all(self, course: str, jobs: list[tuple[dict, Path]]) -> list[Path]:
        """Write each (entry, target): local copies first, small files in batches, then the rest."""
        batchable: list[tuple[dict, Path]] = []
        later: list[tuple[dict, Path]] = []
        planned: set[str] = set()
        for entry, target in jobs:
            target.parent.mkdir(parents=True, exist_ok=True)
            sha256, size = entry["sha256"], entry["size"]
            if self._reuse(sha256, size, target, bool(entry.get("executable"))):
                self._placed(entry, target, size)
            elif size <= batches.SMALL_FILE and sha256 not in planned:
                planned.add(sha256)
                batchable.append((entry, target))
            else:
                later.append((entry, target))
        for group in batches.group(batchable, lambda job: job[0]["size"]):
            self._download_batch(course, group)
        for entry, target in later:
            executable = bool(entry.get("executable"))
            self.download_blob(course, entry["sha256"], entry["size"], target, executable)
            self._placed(entry, target, 0)
        self._learn(course, [entry["sha256"] for entry, _target in jobs])
        return [target for _entry, target in jobs]

    def _carried(self, sha256: str, size: int) -> bytes | None:
        """The blob's bytes, if they came with a manifest (`recent`)."""
        data = self.recent.get(sha256)
        return data if data is not None and len(data) == size else None

    def _holds(self, sha256: str, size: int) -> bool:
        """Whether this client has the blob's bytes, for `_reuse`, without a request."""
        return self._carried(sha256, size) is not None or self.local_copies.has(sha256)

    def _reuse(self, sha256: str, size: int, target: Path, executable: bool) -> bool:
        """Write the blob to `target` without a request, if this client has its bytes:
        they came with a manifest (`recent`), or it wrote them before (`local_copies`)."""
        data = self._carried(sha256, size)
        if data is None:
            return self.local_copies.copy(sha256, size, target, executable)
        target.write_bytes(data)
        self.local_copies.add(sha256, target)
        return True

    def _placed(self, entry: dict, target: Path, copied: int) -> None:
        if entry.get("executable"):
            target.chmod(target.stat().st_mode | 0o111)
        self.progress.advance(copied)
        self.progress.file_done(entry["path"])

    def _download_batch(self, course: str, jobs: list[tuple[dict, Path]]) -> None:
        """One request for several small blobs, split by size and each hash checked."""
        path = f"courses/{_q(course)}/blobs/batch"
        body = {"sha256": [entry["sha256"] for entry, _target in jobs]}

        def attempt() -> None:
            with self.http.stream("POST", path, params=self.params, json=body) as response:
                _checked(response)
                splitter = batches.Splitter(response.iter_raw())
                for entry, target in jobs:
                    self._write_piece(splitter, entry, target)
                if not splitter.at_end():
                    raise ClientError("The server sent more bytes than the files it named")

        self._retrying(f"Download of {len(jobs)} files failed", attempt)
        for entry, target in jobs:
            self.local_copies.add(entry["sha256"], target)
            self._placed(entry, target, 0)

    def _write_piece(self, splitter: batches.Splitter, entry: dict, target: Path) -> None:
        digest = hashlib.sha256()
        with target.open("wb") as handle:
            for piece in splitter.pieces(entry["size"]):
                handle.write(piece)
                digest.update(piece)
                self.progress.advance(len(piece))
        if digest.hexdigest() != entry["sha256"]:
            raise ClientError(f"Download of {entry['path']} is corrupt (hash mismatch)")

    def download_file(self, course: str, entry: dict, root: Path) -> Path:
        """Write one manifest entry below the existing directory `root`, atomically."""
        target = safe_target(Path(root), entry["path"])
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.{secrets.token_hex(4)}.part")
        try:
            self.download_blob(course, entry["sha256"], entry["size"], temporary)
            if entry.get("executable"):
                temporary.chmod(temporary.stat().st_mode | 0o111)
            os.replace(temporary, target)
            self.local_copies.add(entry["sha256"], target)
            self.hashes.put(target, entry["sha256"])
            self._learn(course, [entry["sha256"]])
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        self.progress.file_done(entry["path"])
        return target

    def download_blob(
        self, course: str, sha256: str, size: int, target: Path, executable: bool = False
    ) -> None:
        """Stream one blob into `target`, resuming after a dropped connection, hash checked.

        A blob this client already wrote is copied from there instead, so
        identical files cross the network once (`executable`: the caller will
        make it executable, so it must be a copy of its own, never a link).
        """
        if self._reuse(sha256, size, Path(target), executable):
            self.progress.advance(size)
            return
        path = f"courses/{_q(course)}/blobs/{sha256}"
        check = DownloadCheck(sha256)  # the first answer's Repr-Digest chooses xxh3 or sha256
        with target.open("wb") as handle:
            if size >= HASH_ALONGSIDE:
                sink: InlineSink = BackgroundSink(handle, check, direct=True)
            else:
                sink = InlineSink(handle, check)
            stream = self._stream_into
            if self.fast_downloads and size >= FAST_DOWNLOAD:
                stream = self._stream_fast
            try:  # a retry continues from the bytes received (a Range request)
                failure = f"Download of {target.name} failed"
                self._retrying(failure, lambda: stream(path, sink, size))
            finally:
                sink.close()
        if not check.ok() or target.stat().st_size != size:
            raise ClientError(f"Download of {target.name} is corrupt ({check.algorithm} mismatch)")
        self.local_copies.add(sha256, Path(target))

    def _stream_into(self, path: str, sink: InlineSink, size: int) -> None:
        done = sink.received
        if done >= size:
            return
        headers = {"Range": f"bytes={done}-"} if done else {}
        with self.http.stream("GET", path, params=self.params, headers=headers) as response:
            _checked(response)
            sink.digest.choose(response.headers.get("repr-digest"))
            for chunk in response.iter_raw():  # blobs and archives come uncompressed
                sink.write(chunk)
                self.progress.advance(len(chunk))

    def _stream_fast(self, path: str, sink: InlineSink, size: int) -> None:
        """`_stream_into` read with `rawhttp`: the kernel copies the bytes into the sink."""
        done = sink.received
        if done >= size:
            return
        url = self.http.base_url.join(path).copy_merge_params(self.params)
        headers = dict(self.http.headers)
        if done:
            headers["Range"] = f"bytes={done}-"
        self.fast_requests += 1
        try:
            with rawhttp.get(url, headers, self.http.timeout.read, tls_context()) as body:
                if done and body.status != 206:
                    raise ClientError(f"The server ignored the range asked for {path}")
                sink.digest.choose(body.header("repr-digest"))
                sink.fill(body.readinto, size - done, self._advance_fast)
        except rawhttp.ErrorAnswer as answer:
            _checked(answer.response)
        if sink.received < size:
            raise httpx.ReadError(
                f"The download of {path} ended {size - sink.received} bytes early"
            )

    def _advance_fast(self, nbytes: int) -> None:
        self.fast_received += nbytes
        self.progress.advance(nbytes)

    @staticmethod
    def _swap(staging: Path, dest: Path) -> None:
        """Move `staging` to `dest`; an existing `dest` survives until the new one is in place."""
        if not dest.exists():
            os.replace(staging, dest)
            return
        old = dest.with_name(f".{dest.name}.old-{secrets.token_hex(4)}")
        os.replace(dest, old)
        try:
            os.replace(staging, dest)
        except BaseException:
            os.replace(old, dest)
            raise
        shutil.rmtree(old, ignore_errors=True)

    def fetch_assignment(self, course: str, name: str, dest: Path, **kwargs: Any) -> dict:
        manifest = self.assignment(course, name, inline=True)
        self.download_tree(course, manifest["files"], dest, label=f"fetch {name}", **kwargs)
        self.report(course, "fetch", name, version=manifest["version"])
        return manifest

    def report(
        self,
        course: str,
        action: str,
        assignment: str,
        *,
        version: int | None = None,
        submission_id: int | None = None,
    ) -> None:
        """Tell the audit history that a download finished (fetch, collect, feedback_fetch).

        The files are in place by then, so a report that fails (after the
        retries a request that never left allows) is logged, not raised.
        """
        body = {
            "action": action,
            "assignment": assignment,
            "version": version,
            "submission_id": submission_id,
        }
        path = f"courses/{_q(course)}/events"
        try:
            self.request("POST", path, json=body, idempotent=False)
        except ClientError as exc:
            log.warning("The %s of %s worked but was not recorded: %s", action, assignment, exc)

    def stream_archive(self, path: str, params: dict, write: Callable[[bytes], object]) -> None:
        with self.http.stream("GET", path, params={**self.params, **params}) as response:
            _checked(response)
            for chunk in response.iter_raw():  # blobs and archives come uncompressed
                write(chunk)


class _Unavailable(Exception):
    """A 502-504 answer: worth another attempt; `error` is raised if none is left."""

    def __init__(self, error: ClientError) -> None:
        super().__init__(str(error))
        self.error = error


def _checked(response: httpx.Response) -> httpx.Response:
    """`response` if it succeeded; else its error (read first, when streamed).

    ngshare's API never redirects: a redirect comes from whatever else the URL
    reached (a hub sending a browser to its login page, a proxy)."""
    if response.is_redirect:
        raise not_ngshare(response)
    if response.is_error:
        response.read()
        error = _error(response)
        if response.status_code in RETRY_STATUSES:
            raise _Unavailable(error)
        raise error
    return response


def _error(response: httpx.Response) -> ClientError:
    try:
        body = response.json()
    except ValueError:  # not ngshare's answer: a proxy's or a hub's page
        if response.status_code in RETRY_STATUSES:
            return ClientError(
                f"{response.request.method} {response.url} answered HTTP"
                f" {response.status_code}: the ngshare service is not answering (stopped or"
                " restarting); try again in a minute",
                response.status_code,
                UNAVAILABLE,
            )
        return not_ngshare(response)
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        extra = {k: v for k, v in error.items() if k not in ("status", "reason", "message")}
        return ClientError(
            str(error.get("message")), response.status_code, str(error.get("reason", "")), extra
        )
    message = body.get("message", f"HTTP {response.status_code}") if isinstance(body, dict) else ""
    return ClientError(str(message), response.status_code)
