"""The class cycle over v1, with the requests ngshare_exchange 0.5.x makes.

Bodies are form-encoded with the files as base64 inside a JSON string, exactly
as the exchange builds them (`b64encode` for releases and submissions,
`encodebytes` for feedback), so every server receives the same bytes. The
benchmark builds them faster than `requests` would (the URL-encoding of the
unchanged data file is computed once per run, not per student), because the
clients stand for 200 separate machines and should not eat the server's CPU.

Answers are checked: file list, md5 `checksum`, and for files under 1 MiB the
decoded bytes; larger files are checked by checksum and decoded length only.
"""

from __future__ import annotations

import base64
import binascii
import json
from urllib.parse import quote, quote_plus

import httpx

from bench.metrics import CountingTransport
from bench.users import Auth
from bench.workload import FileInfo, Workload, file_info
from ngshare.client import rawhttp
from ngshare.client.http import tls_context

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
EXACT_CHECK_LIMIT = 2**20


class BenchError(Exception):
    """A wrong or failed answer from the server."""


def quote_base64(text: str) -> str:
    """quote_plus() of base64 text (JSON-escaped newlines allowed), at C speed."""
    return text.replace("\\", "%5C").replace("+", "%2B").replace("/", "%2F").replace("=", "%3D")


def encoded_entry(path: str, content_b64: str) -> str:
    """One URL-encoded element `{"path": ..., "content": ...}` of the v1 `files` JSON list."""
    escaped = content_b64.replace("\n", "\\n")
    head = json.dumps({"path": path, "content": ""})[:-2]
    return quote_plus(head) + quote_base64(escaped) + quote_plus('"}')


def files_field(entries: list[bytes]) -> list[bytes]:
    """`[` + `, `.join(entries) + `]`, URL-encoded, as pieces sent one after the other
    (joining them would copy the 28 MB data file's entry for every student)."""
    pieces = [b"%5B"]
    for index, entry in enumerate(entries):
        pieces += [b"%2C+", entry] if index else [entry]
    return [*pieces, b"%5D"]


class V1Client:
    """One user's HTTP session with a v1 server.

    GET answers (a fetch or a collect carries a whole assignment, ~30 MB of
    JSON) are read by `http.client` into one buffer, as the client library
    reads large blobs (`ngshare.client.rawhttp`): through httpx each answer
    is copied several times in Python on its way, and the simulated users'
    CPU shares the server's two cores. Requests and bytes are counted as for
    httpx's requests.
    """

    def __init__(self, url: str, auth: Auth, user: str, timeout: float) -> None:
        self.user = user
        self.timeout = timeout
        self.counter = CountingTransport()
        self.http = httpx.Client(
            base_url=url + "/",
            headers=auth.headers(user),
            params=auth.params(user),
            transport=self.counter,
            timeout=httpx.Timeout(timeout, connect=10.0),
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> V1Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def get(self, path: str, **params: str) -> dict:
        url = self.http.build_request("GET", quote(path), params=params).url
        self.counter.requests += 1
        try:
            with rawhttp.get(url, self.http.headers, self.timeout, tls_context()) as body:
                status, data = body.status, body.response.read()
        except rawhttp.ErrorAnswer as error:
            self.counter.down += len(error.response.content)
            return _ok(error.response)
        self.counter.down += len(data)
        return _checked(status, data)

    def post(self, path: str, body: str | list[bytes]) -> dict:
        if isinstance(body, str):
            return _ok(self.http.post(quote(path), content=body.encode("ascii"), headers=FORM))
        headers = {**FORM, "Content-Length": str(sum(map(len, body)))}
        return _ok(self.http.post(quote(path), content=iter(body), headers=headers))


def _ok(response: httpx.Response) -> dict:
    return _checked(response.status_code, response.content)


def _checked(status: int, content: bytes) -> dict:
    """The answer's JSON object, if it is a success."""
    try:
        body = json.loads(content)
    except ValueError:
        body = None
    if status != 200 or not isinstance(body, dict) or body.get("success") is not True:
        message = body.get("message") if isinstance(body, dict) else content[:200].decode("latin-1")
        raise BenchError(f"HTTP {status}: {message}")
    return body


def form(**fields: str) -> str:
    return "&".join(f"{k}={quote_plus(v)}" for k, v in fields.items())


def check_files(files: object, expected: dict[str, FileInfo], exact: dict[str, bytes]) -> None:
    """Compare a downloaded encoded tree with what should be there."""
    if not isinstance(files, list):
        raise BenchError("the answer has no file list")
    got = {entry.get("path"): entry for entry in files}
    if set(got) != set(expected):
        raise BenchError(f"files differ: got {sorted(got)}, expected {sorted(expected)}")
    for path, info in expected.items():
        entry = got[path]
        if entry.get("checksum") != info.md5:
            raise BenchError(f"{path}: checksum {entry.get('checksum')} is not {info.md5}")
        content = entry.get("content", "")
        if path in exact and info.size <= EXACT_CHECK_LIMIT:
            try:
                data = binascii.a2b_base64(content.replace("\n", ""))
            except binascii.Error as exc:
                raise BenchError(f"{path}: bad base64: {exc}") from None
            if data != exact[path]:
                raise BenchError(f"{path}: content differs")
        elif _decoded_size(content) != info.size:
            raise BenchError(f"{path}: {_decoded_size(content)} bytes, expected {info.size}")


def _decoded_size(content: str) -> int:
    length = len(content) - (content.count("\n") if "\n" in content else 0)  # a scan, not a count
    return length * 3 // 4 - content[-3:].count("=")


class V1Cycle:
    """The requests of each nbgrader step, for one course and assignment."""

    def __init__(self, workload: Workload, course: str, assignment: str) -> None:
        self.w = workload
        self.course = course
        self.assignment = assignment
        files = workload.release_files()
        self.data_path = next(p for p in files if p not in workload.notebook_paths())
        self.data_entry = encoded_entry(
            self.data_path, base64.b64encode(files[self.data_path]).decode()
        ).encode("ascii")
        self.release_notebooks = {p: files[p] for p in workload.notebook_paths()}

    def _files(self, notebooks: dict[str, bytes]) -> list[bytes]:
        entries = [
            encoded_entry(p, base64.b64encode(d).decode()).encode("ascii")
            for p, d in notebooks.items()
        ]
        return files_field([*entries, self.data_entry])

    # Steps (each is one timed operation of one user)

    def create_course(self, admin: V1Client, instructor: str) -> None:
        admin.post(f"course/{self.course}", form(user=admin.user, instructors=f'["{instructor}"]'))

    def add_students(self, instructor: V1Client) -> None:
        roster = [
            {"username": s, "first_name": s.title(), "last_name": "Bench", "email": f"{s}@x.org"}
            for s in self.w.student_names()
        ]
        body = instructor.post(
            f"students/{self.course}", form(user=instructor.user, students=json.dumps(roster))
        )
        failed = [s for s in body.get("status", []) if not s.get("success")]
        if failed:
            raise BenchError(f"{len(failed)} students not added: {failed[0]}")

    def release(self, instructor: V1Client) -> None:
        listed = instructor.get(f"assignments/{self.course}")["assignments"]
        if self.assignment in listed:
            raise BenchError(f"{self.assignment} is already released")
        head = f"user={quote_plus(instructor.user)}&files=".encode()
        body = [head, *self._files(self.release_notebooks)]
        instructor.post(f"assignment/{self.course}/{self.assignment}", body)

    def fetch(self, student: V1Client) -> None:
        body = student.get(f"assignment/{self.course}/{self.assignment}")
        check_files(body.get("files"), self.w.release_info, self.release_notebooks)

    def submit(self, student: V1Client) -> str:
        listed = student.get(f"assignment/{self.course}/{self.assignment}", list_only="true")
        if not any(f["path"].endswith(".ipynb") for f in listed["files"]):
            raise BenchError("the release lists no notebooks")
        notebooks = self.w.changed_notebooks(student.user)
        body = [f"user={quote_plus(student.user)}&files=".encode(), *self._files(notebooks)]
        return student.post(f"submission/{self.course}/{self.assignment}", body)["timestamp"]

    def list_submissions(self, instructor: V1Client) -> dict[str, str]:
        """The latest timestamp of each student, from one listing."""
        listed = instructor.get(f"submissions/{self.course}/{self.assignment}")["submissions"]
        latest: dict[str, str] = {}
        for item in listed:
            student, stamp = item["student_id"], item["timestamp"]
            latest[student] = max(latest.get(student, stamp), stamp)
        return latest

    def collect(self, instructor: V1Client, student: str) -> str:
        body = instructor.get(f"submission/{self.course}/{self.assignment}/{student}")
        check_files(
            body.get("files"), self.w.submission_info(student), self.w.changed_notebooks(student)
        )
        return body["timestamp"]

    def feedback(self, instructor: V1Client, student: str, timestamp: str) -> None:
        html = self.w.feedback_html(student)
        files = json.dumps(
            [{"path": self.w.feedback_name(), "content": base64.encodebytes(html).decode()}]
        )
        instructor.post(
            f"feedback/{self.course}/{self.assignment}/{student}",
            form(timestamp=timestamp, files=files),
        )

    def fetch_feedback(self, student: V1Client, timestamp: str) -> None:
        body = student.get(
            f"feedback/{self.course}/{self.assignment}/{student.user}",
            timestamp=timestamp,
            list_only="false",
        )
        html = self.w.feedback_html(student.user)
        name = self.w.feedback_name()
        check_files(body.get("files"), {name: file_info(html)}, {name: html})
