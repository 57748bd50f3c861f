"""The class cycle over v2, with NgshareClient: one client per simulated student.

Students fetch into their own directories, edit the notebooks there and
submit that directory (the unchanged data file is deduplicated by hash, so
only the notebooks travel). The instructor lists all submissions in one
request, with their files, and collects them as the nbgrader plugin does: each
distinct blob downloaded once (small ones in batches), each student's tree
written from the local copies; or, with `--v2-collect archive`, as `collect`
tar archives (a few students per archive, streamed and unpacked on the fly).
Feedback goes back as the plugin's release_feedback sends it: the whole class
in one request (`put_feedback_many`); or, with `--v2-feedback each`, one
request per student.
"""

from __future__ import annotations

import hashlib
import tarfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

from bench.metrics import CountingTransport
from bench.users import Auth
from bench.v1 import BenchError
from bench.workload import Workload
from ngshare.client import FeedbackFiles, NgshareClient
from ngshare.client.local import LINK_MIN

CHUNK = 2**20


def make_client(url: str, auth: Auth, user: str, timeout: float) -> NgshareClient:
    """An NgshareClient whose HTTP session counts requests and bytes (`client.counter`)."""
    dev = auth.kind == "dev"
    counter = CountingTransport()
    client = NgshareClient(
        url,
        auth.token(user),
        user=user if dev else None,
        timeout=timeout,
        transport=counter,
        link_min=LINK_MIN,  # as the nbgrader plugin (c.Exchange.link_identical_files)
        fast_downloads=True,  # as a user's client, which has no custom transport
        fast_uploads=True,
    )
    counter.client = client
    client.counter = counter  # type: ignore[attr-defined]
    return client


def write_tree(root: Path, files: dict[str, bytes]) -> None:
    for path, data in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def _q(value: str) -> str:
    return quote(value, safe="")


class V2Cycle:
    def __init__(self, workload: Workload, course: str, assignment: str, workdir: Path) -> None:
        self.w = workload
        self.course = course
        self.assignment = assignment
        self.workdir = workdir
        self.release_dir = workdir / "release" / assignment

    def student_dir(self, student: str) -> Path:
        return self.workdir / "students" / student

    def hash_cache_path(self, student: str) -> Path:
        """Beside the student's assignment, as the plugin keeps it in their data dir."""
        return self.student_dir(student) / "hashes.json"

    # Steps

    def prepare_release(self) -> None:
        write_tree(self.release_dir, self.w.release_files())

    def release(self, instructor: NgshareClient) -> None:
        answer = instructor.release(self.course, self.assignment, self.release_dir)
        if answer.get("file_count") != len(self.w.release_info):
            raise BenchError(f"release answered {answer}")

    def fetch(self, student: NgshareClient, name: str) -> None:
        dest = self.student_dir(name) / self.assignment
        manifest = student.fetch_assignment(self.course, self.assignment, dest)
        got = {f["path"]: f["sha256"] for f in manifest["files"]}
        if got != {p: i.sha256 for p, i in self.w.release_info.items()}:
            raise BenchError("the fetched manifest differs from the release")

    def prepare_submit(self, name: str) -> None:
        """The student's edits (not timed)."""
        write_tree(self.student_dir(name) / self.assignment, self.w.changed_notebooks(name))

    def submit(self, student: NgshareClient, name: str) -> dict:
        answer = student.submit(
            self.course, self.assignment, self.student_dir(name) / self.assignment
        )
        if answer.get("file_count") != len(self.w.release_info):
            raise BenchError(f"submit answered {answer}")
        return answer

    def list_submissions(self, instructor: NgshareClient) -> dict[str, int]:
        """Each student's newest submission id, from one request."""
        listed = instructor.submissions(self.course, self.assignment, latest=True)
        return {item["student"]: item["id"] for item in listed}

    def collect_archive(self, instructor: NgshareClient, students: list[str], dest: Path) -> None:
        """One streamed `collect` tar for `students`, unpacked into `dest` and checked."""
        path = f"courses/{_q(self.course)}/assignments/{_q(self.assignment)}/collect"
        params = {**instructor.params, "students": ",".join(students), "format": "tar"}
        seen: dict[str, set[str]] = {s: set() for s in students}
        infos = {s: self.w.submission_info(s) for s in students}
        with instructor.http.stream("GET", path, params=params) as response:
            if response.is_error:
                response.read()
                raise BenchError(f"HTTP {response.status_code}: {response.text[:200]}")
            for name, pieces in read_tar(response.iter_raw(CHUNK)):
                if name == "submissions.json":
                    for _piece in pieces:
                        pass
                    continue
                student, _, relative = name.partition("/")
                expected = infos.get(student, {}).get(relative)
                if expected is None:
                    raise BenchError(f"unexpected archive member {name}")
                if _write(pieces, dest / student / relative) != expected.sha256:
                    raise BenchError(f"{name}: sha256 differs")
                seen[student].add(relative)
        for student, paths in seen.items():
            if paths != set(infos[student]):
                raise BenchError(f"the archive misses files of {student}")

    def collect_trees(self, instructor: NgshareClient, dest: Path) -> dict[str, int]:
        """What the nbgrader plugin does: one listing with every submission's files, each
        distinct blob fetched once (small ones in batches), then each student's tree
        written from those local copies. Returns each student's collected submission id."""
        listed = instructor.submissions(self.course, self.assignment, latest=True, files=True)
        instructor.download_trees(self.course, [item["files"] for item in listed], dest)
        try:
            for item in listed:
                expected = self.w.submission_info(item["student"])
                got = {f["path"]: f["sha256"] for f in item["files"]}
                if got != {path: info.sha256 for path, info in expected.items()}:
                    raise BenchError(f"the submission of {item['student']} differs")
                instructor.download_tree(
                    self.course,
                    item["files"],
                    dest / item["student"],
                    extra={"timestamp.txt": item["timestamp"].encode()},
                )
        finally:
            instructor.forget_prefetched()
        return {item["student"]: item["id"] for item in listed}

    def prepare_feedback(self, student: str) -> Path:
        root = self.workdir / "feedback" / student
        write_tree(root, {self.w.feedback_name(): self.w.feedback_html(student)})
        return root

    def feedback(self, instructor: NgshareClient, student: str, submission_id: int) -> None:
        root = self.workdir / "feedback" / student
        instructor.put_feedback(self.course, self.assignment, student, submission_id, root)

    def feedback_all(self, instructor: NgshareClient, latest: dict[str, int]) -> None:
        """Every student's feedback at once, each html hashed first (as the plugin does)."""
        sets = [
            FeedbackFiles(name, submission_id, instructor.scan(self.workdir / "feedback" / name))
            for name, submission_id in sorted(latest.items())
        ]
        released = instructor.put_feedback_many(self.course, self.assignment, sets)
        if len(released) != len(sets):
            raise BenchError(f"{len(released)} feedback sets released of {len(sets)}")

    def fetch_feedback(self, student: NgshareClient, name: str, submission_id: int) -> None:
        answer = student.feedback(self.course, self.assignment, name, submission_id, inline=True)
        dest = self.student_dir(name) / "feedback" / str(submission_id)
        student.download_tree(self.course, answer["files"], dest)
        html = self.w.feedback_html(name)
        if (dest / self.w.feedback_name()).read_bytes() != html:
            raise BenchError("the feedback differs")


def _write(pieces: Iterator[memoryview], target: Path) -> str:
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with target.open("wb") as handle:
        for piece in pieces:
            digest.update(piece)
            handle.write(piece)
    return digest.hexdigest()


class _Chunks:
    """Exact-size reads over an iterator of byte chunks, without copying big pieces."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = iter(chunks)
        self._view = memoryview(b"")

    def pieces(self, size: int) -> Iterator[memoryview]:
        while size > 0:
            while not self._view:
                try:
                    self._view = memoryview(next(self._chunks))
                except StopIteration:
                    raise BenchError("the archive ends early") from None
            piece = self._view[:size]
            self._view = self._view[len(piece) :]
            size -= len(piece)
            yield piece

    def read(self, size: int) -> bytes:
        return b"".join(self.pieces(size))

    def skip(self, size: int) -> None:
        for _piece in self.pieces(size):
            pass


def read_tar(chunks: Iterator[bytes]) -> Iterator[tuple[str, Iterator[memoryview]]]:
    """Regular files of a streamed tar (ustar/pax) as (name, pieces of its bytes).

    A minimal streaming reader: tarfile's stream mode copies every block a
    few times, which made the benchmark's client slower than the server.
    Each file's pieces must be consumed before the next item is requested.
    """
    stream = _Chunks(chunks)
    long_name: str | None = None
    while True:
        header = stream.read(tarfile.BLOCKSIZE)
        if header.count(0) == tarfile.BLOCKSIZE:
            return
        info = tarfile.TarInfo.frombuf(header, "utf-8", "surrogateescape")
        padding = -info.size % tarfile.BLOCKSIZE
        if info.type in (tarfile.XHDTYPE, tarfile.GNUTYPE_LONGNAME):
            data = stream.read(info.size)
            stream.skip(padding)
            long_name = (
                _pax_path(data) if info.type == tarfile.XHDTYPE else data.rstrip(b"\0").decode()
            )
            continue
        name, long_name = long_name or info.name, None
        if info.isreg():
            yield name, stream.pieces(info.size)
        else:
            stream.skip(info.size)
        stream.skip(padding)


def _pax_path(data: bytes) -> str | None:
    path = None
    while data:
        length = int(data.split(b" ", 1)[0])
        record, data = data[:length], data[length:]
        key, _, value = record.split(b" ", 1)[1][:-1].partition(b"=")
        if key == b"path":
            path = value.decode("utf-8", "surrogateescape")
    return path
