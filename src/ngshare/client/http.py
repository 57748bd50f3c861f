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

import hashlib
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from ngshare.client.errors import ClientError
from ngshare.client.trees import CHUNK, LocalFile, NoProgress, Progress, safe_target, scan_tree

RETRY_STATUSES = {502, 503, 504}
UPLOAD_CHUNK = 4 * 1024 * 1024


def _q(value: str) -> str:
    return quote(value, safe="")


class NgshareClient:
    """A session with one ngshare server as one user.

    `url` is the service base including its prefix (e.g.
    `http://hub/services/ngshare`); the v2 API lives under `<url>/v2/`.
    Give `token` for JupyterHub / token-file servers, or `user` for a dev server.
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
    ) -> None:
        headers = {"Authorization": f"token {token}"} if token else {}
        self.params = {"user": user} if user else {}
        self.retries = retries
        self.backoff = backoff
        self.progress = progress or NoProgress()
        # sha256 -> a file this client wrote and verified, to copy instead of downloading
        # again (the same data file in every student's submission is fetched once)
        self.local_copies: dict[str, Path] = {}
        self.http = httpx.Client(
            base_url=url.rstrip("/") + "/v2/",
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=10.0),
            transport=httpx.HTTPTransport(retries=2),
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> NgshareClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # Plumbing

    def request(self, method: str, path: str, *, idempotent: bool = True, **kwargs: Any) -> Any:
        """Send a request and return the JSON answer; raise ClientError on failure."""
        response = self._send(method, path, idempotent=idempotent, **kwargs)
        return response.json() if response.content else {}

    def _send(self, method: str, path: str, *, idempotent: bool, **kwargs: Any) -> httpx.Response:
        params = {**self.params, **kwargs.pop("params", {})}
        attempts = self.retries + 1 if idempotent else 1
        for attempt in range(attempts):
            try:
                response = self.http.request(method, path, params=params, **kwargs)
            except httpx.TransportError as exc:
                if attempt + 1 < attempts:
                    self._sleep(attempt)
                    continue
                raise ClientError(f"Cannot reach the ngshare server: {exc}") from exc
            if response.status_code in RETRY_STATUSES and attempt + 1 < attempts:
                self._sleep(attempt)
                continue
            if response.is_error:
                raise _error(response)
            return response
        raise AssertionError("unreachable")

    def _sleep(self, attempt: int) -> None:
        time.sleep(self.backoff * (2**attempt))

    # Reading

    def whoami(self) -> dict:
        """`{"username": ..., "admin": ...}` of the caller (the service's `<prefix>me`)."""
        base = str(self.http.base_url).rstrip("/").removesuffix("/v2")
        return self.request("GET", f"{base}/me")

    def courses(self) -> list[dict]:
        return self.request("GET", "courses")["courses"]

    def assignments(self, course: str) -> list[dict]:
        return self.request("GET", f"courses/{_q(course)}/assignments")["assignments"]

    def assignment(self, course: str, name: str, version: int | None = None) -> dict:
        params = {"version": version} if version else {}
        return self.request("GET", f"courses/{_q(course)}/assignments/{_q(name)}", params=params)

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
        self, course: str, assignment: str, student: str, *, files: bool = False
    ) -> list[dict]:
        path = f"courses/{_q(course)}/assignments/{_q(assignment)}/submissions/{_q(student)}"
        params = {"files": "true"} if files else {}
        return self.request("GET", path, params=params)["submissions"]

    def submission(self, course: str, assignment: str, student: str, submission_id: int) -> dict:
        return self.request(
            "GET", self._submission_path(course, assignment, student, submission_id)
        )

    def feedback(self, course: str, assignment: str, student: str, submission_id: int) -> dict:
        path = self._submission_path(course, assignment, student, submission_id) + "/feedback"
        return self.request("GET", path)

    @staticmethod
    def _submission_path(course: str, assignment: str, student: str, submission_id: int) -> str:
        return (
            f"courses/{_q(course)}/assignments/{_q(assignment)}/submissions/"
            f"{_q(student)}/{int(submission_id)}"
        )

    # Uploading

    def missing(self, course: str, hashes: list[str]) -> set[str]:
        path = f"courses/{_q(course)}/blobs/missing"
        return set(self.request("POST", path, json={"sha256": hashes})["missing"])

    def upload_files(self, course: str, files: list[LocalFile], label: str = "upload") -> int:
        """Upload the blobs of `files` the server lacks; returns the bytes sent."""
        unique = {f.sha256: f for f in files}
        wanted = self.missing(course, list(unique)) if unique else set()
        todo = [unique[sha] for sha in unique if sha in wanted]
        self.progress.start(sum(f.size for f in todo), len(todo), label)
        sent = 0
        try:
            for item in todo:
                sent += self._upload_blob(course, item)
                self.progress.file_done(item.path)
        finally:
            self.progress.finish()
        return sent

    def _upload_blob(self, course: str, item: LocalFile) -> int:
        path = f"courses/{_q(course)}/blobs/{item.sha256}"
        offset = 0
        for attempt in range(self.retries + 1):
            try:
                return self._put_from(path, item, offset)
            except httpx.TransportError as exc:
                if attempt == self.retries:
                    raise ClientError(f"Upload of {item.path} failed: {exc}") from exc
                self._sleep(attempt)
                offset = self.request("GET", path + "/upload")["offset"]
                if offset >= item.size:
                    return 0
        raise AssertionError("unreachable")

    def _put_from(self, path: str, item: LocalFile, offset: int) -> int:
        params = {**self.params, "size": item.size, "offset": offset}
        response = self.http.put(
            path,
            params=params,
            content=self._read_from(item.source, offset),
            headers={"Content-Length": str(item.size - offset)},
        )
        if response.status_code == 409 and response.json()["error"].get("offset") is not None:
            return self._put_from(path, item, response.json()["error"]["offset"])
        if response.is_error:
            raise _error(response)
        return item.size - offset

    def _read_from(self, source: Path, offset: int) -> Iterator[bytes]:
        with source.open("rb") as handle:
            handle.seek(offset)
            while chunk := handle.read(UPLOAD_CHUNK):
                self.progress.advance(len(chunk))
                yield chunk

    def release(self, course: str, name: str, root: Path, **scan: Any) -> dict:
        return self.release_files(course, name, scan_tree(root, **scan))

    def release_files(self, course: str, name: str, files: list[LocalFile]) -> dict:
        """Release `files` as the assignment's next version (unless identical to the current)."""
        self.upload_files(course, files, f"release {name}")
        manifest = {"files": [f.manifest_entry() for f in files]}
        return self.request("PUT", f"courses/{_q(course)}/assignments/{_q(name)}", json=manifest)

    def withdraw(self, course: str, name: str) -> dict:
        """Withdraw the current release; versions and submissions are kept."""
        return self.request("DELETE", f"courses/{_q(course)}/assignments/{_q(name)}")

    def submit(self, course: str, assignment: str, root: Path, **scan: Any) -> dict:
        return self.submit_files(course, assignment, scan_tree(root, **scan))

    def submit_files(self, course: str, assignment: str, files: list[LocalFile]) -> dict:
        """Submit `files`; one Idempotency-Key for all retries, so a retry is not a second one."""
        self.upload_files(course, files, f"submit {assignment}")
        manifest = {"files": [f.manifest_entry() for f in files]}
        key = secrets.token_hex(16)
        return self.request(
            "POST",
            f"courses/{_q(course)}/assignments/{_q(assignment)}/submissions",
            json=manifest,
            headers={"Idempotency-Key": key},
        )

    def put_feedback(
        self, course: str, assignment: str, student: str, submission_id: int, root: Path
    ) -> dict:
        return self.put_feedback_files(course, assignment, student, submission_id, scan_tree(root))

    def put_feedback_files(
        self, course: str, assignment: str, student: str, submission_id: int, files: list[LocalFile]
    ) -> dict:
        self.upload_files(course, files, f"feedback {student}")
        path = self._submission_path(course, assignment, student, submission_id) + "/feedback"
        return self.request("PUT", path, json={"files": [f.manifest_entry() for f in files]})

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
        self.upload_files(course, files, f"solutions {assignment}")
        path = self._assignment_path(course, assignment) + "/solutions"
        return self.request("PUT", path, json={"files": [f.manifest_entry() for f in files]})

    def put_solutions(self, course: str, assignment: str, root: Path, **scan: Any) -> dict:
        return self.put_solutions_files(course, assignment, scan_tree(root, **scan))

    def solutions(self, course: str, assignment: str) -> dict:
        """The solutions' manifest, once the assignment's `solutions` setting allows it."""
        return self.request("GET", self._assignment_path(course, assignment) + "/solutions")

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
            written = [self._fetch_into(course, staging, entry) for entry in files]
            for relative, content in (extra or {}).items():
                target = safe_target(staging, relative)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(content)
            self._swap(staging, dest)
            self._moved(staging, dest)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        finally:
            self.progress.finish()
        return [dest / path.relative_to(staging) for path in written]

    def _fetch_into(self, course: str, staging: Path, entry: dict) -> Path:
        target = safe_target(staging, entry["path"])
        target.parent.mkdir(parents=True, exist_ok=True)
        self.download_blob(course, entry["sha256"], entry["size"], target)
        if entry.get("executable"):
            target.chmod(target.stat().st_mode | 0o111)
        self.progress.file_done(entry["path"])
        return target

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
            self.local_copies[entry["sha256"]] = target
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        self.progress.file_done(entry["path"])
        return target

    def download_blob(self, course: str, sha256: str, size: int, target: Path) -> None:
        """Stream one blob into `target`, resuming after a dropped connection, hash checked.

        A blob this client already wrote is copied from there instead (and
        checked all the same), so identical files cross the network once.
        """
        if self._copy_local(sha256, size, Path(target)):
            return
        digest = hashlib.sha256()
        path = f"courses/{_q(course)}/blobs/{sha256}"
        with target.open("wb") as handle:
            for attempt in range(self.retries + 1):
                try:
                    self._stream_into(path, handle, digest, size)
                    break
                except httpx.TransportError as exc:
                    if attempt == self.retries:
                        raise ClientError(f"Download of {target.name} failed: {exc}") from exc
                    self._sleep(attempt)
        if digest.hexdigest() != sha256 or target.stat().st_size != size:
            raise ClientError(f"Download of {target.name} is corrupt (hash mismatch)")
        self.local_copies[sha256] = Path(target)

    def _moved(self, old_root: Path, new_root: Path) -> None:
        """Keep `local_copies` pointing at files that were moved into place."""
        for sha256, path in list(self.local_copies.items()):
            if path.is_relative_to(old_root):
                self.local_copies[sha256] = new_root / path.relative_to(old_root)

    def _copy_local(self, sha256: str, size: int, target: Path) -> bool:
        source = self.local_copies.get(sha256)
        if source is None or source == target:
            return False
        digest = hashlib.sha256()
        try:
            with source.open("rb") as reader, target.open("wb") as writer:
                while chunk := reader.read(CHUNK):
                    digest.update(chunk)
                    writer.write(chunk)
        except OSError:
            self.local_copies.pop(sha256, None)
            return False
        if digest.hexdigest() != sha256 or target.stat().st_size != size:
            self.local_copies.pop(sha256, None)  # changed since: fetch it for real
            return False
        self.progress.advance(size)
        self.local_copies[sha256] = target
        return True

    def _stream_into(self, path: str, handle: Any, digest: Any, size: int) -> None:
        done = handle.tell()
        if done >= size:
            return
        headers = {"Range": f"bytes={done}-"} if done else {}
        with self.http.stream("GET", path, params=self.params, headers=headers) as response:
            if response.is_error:
                response.read()
                raise _error(response)
            for chunk in response.iter_raw():  # blobs and archives come uncompressed
                handle.write(chunk)
                digest.update(chunk)
                self.progress.advance(len(chunk))

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
        manifest = self.assignment(course, name)
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
        """Tell the audit history that a download finished (fetch, collect, feedback_fetch)."""
        body = {
            "action": action,
            "assignment": assignment,
            "version": version,
            "submission_id": submission_id,
        }
        self.request("POST", f"courses/{_q(course)}/events", json=body, idempotent=False)

    def stream_archive(self, path: str, params: dict, write: Callable[[bytes], object]) -> None:
        with self.http.stream("GET", path, params={**self.params, **params}) as response:
            if response.is_error:
                response.read()
                raise _error(response)
            for chunk in response.iter_raw():  # blobs and archives come uncompressed
                write(chunk)


def _error(response: httpx.Response) -> ClientError:
    try:
        body = response.json()
    except ValueError:
        return ClientError(f"HTTP {response.status_code} from the server", response.status_code)
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        extra = {k: v for k, v in error.items() if k not in ("status", "reason", "message")}
        return ClientError(
            str(error.get("message")), response.status_code, str(error.get("reason", "")), extra
        )
    message = body.get("message", f"HTTP {response.status_code}") if isinstance(body, dict) else ""
    return ClientError(str(message), response.status_code)
