"""v2 through the client library: dedup, atomic manifests, resumable and ranged transfers."""

import hashlib
import io
import json
import os
import random
import tarfile
import time
import zipfile
from typing import ClassVar

import anyio
import httpx
import pytest

from ngshare.api.v2.receiving import (
    LARGE_BATCH,
    LARGE_FILE,
    WRITE_BATCH,
    BatchRing,
    receive_body,
)
from ngshare.budget import MemoryBudget
from ngshare.client import ClientError, NgshareClient, scan_tree
from ngshare.errors import BadRequest
from ngshare.storage.direct import page_aligned
from ngshare.storage.pieces import SEND_CHUNK, file_pieces
from tests.servers import token_for
from tests.v1util import ok


@pytest.fixture
def client_for(server):
    made = []

    def make(user: str) -> NgshareClient:
        made.append(NgshareClient(server.url, token_for(user), retries=1, backoff=0.05))
        return made[-1]

    yield make
    for client in made:
        client.close()


def write_tree(root, files: dict[str, bytes]):
    for path, data in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return root


TREE = {"ps1.ipynb": b'{"cells": []}', "data/big.bin": os.urandom(3 * 1024 * 1024 + 5)}


def untar(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        return {m.name: archive.extractfile(m).read() for m in archive.getmembers()}


def read_tree(root) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_release_and_fetch_round_trip(client_for, course, tmp_path):
    inst = client_for("inst1")
    released = inst.release(course, "ps1", write_tree(tmp_path / "src", TREE))
    assert released["version"] == 1 and released["file_count"] == 2
    dest = tmp_path / "fetched"
    manifest = client_for("stu1").fetch_assignment(course, "ps1", dest)
    assert read_tree(dest) == TREE
    assert {f["path"]: f["sha256"] for f in manifest["files"]} == {
        p: hashlib.sha256(d).hexdigest() for p, d in TREE.items()
    }
    listed = client_for("stu1").assignments(course)
    assert [(a["name"], a["version"]) for a in listed] == [("ps1", 1)]


def test_release_uploads_only_missing_blobs(client_for, course, tmp_path):
    inst = client_for("inst1")
    src = write_tree(tmp_path / "src", TREE)
    inst.release(course, "ps1", src)
    files = scan_tree(src)
    assert inst.upload_files(course, files) == 0  # everything already there
    (src / "ps1.ipynb").write_bytes(b'{"cells": [1]}')
    files = scan_tree(src)
    assert inst.upload_files(course, files) == len(b'{"cells": [1]}')


def test_rerelease_makes_a_version_identical_one_does_not(client_for, course, tmp_path):
    inst = client_for("inst1")
    src = write_tree(tmp_path / "src", {"a.txt": b"one"})
    assert inst.release(course, "ps1", src)["version"] == 1
    assert inst.release(course, "ps1", src)["version"] == 1
    (src / "a.txt").write_bytes(b"two")
    assert inst.release(course, "ps1", src)["version"] == 2
    old = client_for("stu1").assignment(course, "ps1", version=1)
    assert old["version"] == 1 and old["latest_version"] == 2
    assert old["files"][0]["sha256"] == hashlib.sha256(b"one").hexdigest()


def test_submit_list_and_feedback_state(client_for, course, tmp_path):
    client_for("inst1").release(course, "ps1", write_tree(tmp_path / "src", {"q": b"?"}))
    first = client_for("stu1").submit(course, "ps1", write_tree(tmp_path / "s1", {"a": b"1"}))
    second = client_for("stu1").submit(course, "ps1", write_tree(tmp_path / "s1", {"a": b"2"}))
    other = client_for("stu2").submit(course, "ps1", write_tree(tmp_path / "s2", {"a": b"3"}))
    assert first["timestamp"] < second["timestamp"]
    assert first["release_version"] == 1 and first["feedback"] is None
    inst = client_for("inst1")
    inst.put_feedback(
        course, "ps1", "stu1", second["id"], write_tree(tmp_path / "fb", {"f": b"ok"})
    )
    everything = inst.submissions(course, "ps1")
    assert [s["id"] for s in everything] == [first["id"], second["id"], other["id"]]
    latest = {s["student"]: s for s in inst.submissions(course, "ps1", latest=True)}
    assert latest["stu1"]["id"] == second["id"] and latest["stu2"]["id"] == other["id"]
    assert latest["stu1"]["feedback"]["file_count"] == 1 and latest["stu2"]["feedback"] is None
    # the student sees his own, with feedback, and fetches it
    mine = client_for("stu1").student_submissions(course, "ps1", "stu1")
    assert [s["feedback"] is not None for s in mine] == [False, True]
    feedback = client_for("stu1").feedback(course, "ps1", "stu1", second["id"])
    client_for("stu1").download_tree(course, feedback["files"], tmp_path / "got")
    assert read_tree(tmp_path / "got") == {"f": b"ok"}
    with pytest.raises(ClientError) as denied:
        client_for("stu2").student_submissions(course, "ps1", "stu1")
    assert denied.value.status == 403


def test_v1_client_sees_v2_submissions_with_md5(api, client_for, course, tmp_path):
    client_for("inst1").release(course, "ps1", write_tree(tmp_path / "src", {"q": b"?"}))
    made = client_for("stu1").submit(course, "ps1", write_tree(tmp_path / "s", {"a.py": b"x"}))
    body = ok(api("inst1").get(f"submission/{course}/ps1/stu1", params={"list_only": "true"}))
    assert body["timestamp"] == made["timestamp"]
    assert body["files"] == [{"path": "a.py", "checksum": hashlib.md5(b"x").hexdigest()}]


def test_idempotent_submission(server, client_for, course, tmp_path):
    client_for("inst1").release(course, "ps1", write_tree(tmp_path / "src", {"q": b"?"}))
    stu = client_for("stu1")
    files = write_tree(tmp_path / "s", {"a": b"1"})
    stu.upload_files(course, scan_tree(files))
    manifest = {"files": [{"path": "a", "sha256": hashlib.sha256(b"1").hexdigest(), "size": 1}]}
    path = f"courses/{course}/assignments/ps1/submissions"
    headers = {"Idempotency-Key": "attempt-42"}
    one = stu.request("POST", path, json=manifest, headers=headers)
    two = stu.request("POST", path, json=manifest, headers=headers)
    assert one == two
    assert len(stu.student_submissions(course, "ps1", "stu1")) == 1


def test_manifest_with_missing_blob_is_refused_atomically(client_for, course, tmp_path):
    inst = client_for("inst1")
    present = write_tree(tmp_path / "src", {"a": b"present"})
    inst.upload_files(course, scan_tree(present))
    absent = hashlib.sha256(b"never uploaded").hexdigest()
    manifest = {"files": [
        {"path": "a", "sha256": hashlib.sha256(b"present").hexdigest(), "size": 7},
        {"path": "b", "sha256": absent, "size": 14},
    ]}  # fmt: skip
    with pytest.raises(ClientError) as refused:
        inst.request("PUT", f"courses/{course}/assignments/ps1", json=manifest)
    assert refused.value.status == 409 and refused.value.extra["missing"] == [absent]
    assert inst.assignments(course) == []


def test_hash_mismatch_is_refused_and_not_stored(server, course):
    headers = {"Authorization": f"token {token_for('stu1')}"}
    claimed = hashlib.sha256(b"what I say").hexdigest()
    response = httpx.put(
        f"{server.url}/v2/courses/{course}/blobs/{claimed}",
        params={"size": 9},
        content=b"something",
        headers=headers,
    )
    assert response.status_code == 400
    assert response.json()["error"]["reason"] == "hash_mismatch"
    missing = httpx.post(
        f"{server.url}/v2/courses/{course}/blobs/missing",
        json={"sha256": [claimed]},
        headers=headers,
    ).json()
    assert missing == {"missing": [claimed]}


def test_large_upload_in_odd_pieces_arrives_whole(server, course, tmp_path):
    """Past LARGE_FILE the server gathers LARGE_BATCH batches in reused buffers, writes them
    with O_DIRECT and hashes each one behind the write: a buffer reused too early
    would change the bytes hashed or stored, and the upload would be refused."""
    size = LARGE_FILE + 3 * 1024 * 1024 + 17
    data = random.Random(7).randbytes(size)
    sha = hashlib.sha256(data).hexdigest()

    def odd_pieces():
        start, sizes = 0, [65536 + 3, 1 << 20, 777, 3 << 20]
        while start < size:
            step = sizes[start % len(sizes)]
            yield data[start : start + step]
            start += step

    headers = {"Authorization": f"token {token_for('inst1')}"}
    url = f"{server.url}/v2/courses/{course}/blobs/{sha}"
    response = httpx.put(
        url, params={"size": size}, content=odd_pieces(), headers=headers, timeout=120
    )
    assert response.status_code == 201, response.text
    entry = {"path": "big.bin", "sha256": sha, "size": size, "executable": False}
    assignment = f"{server.url}/v2/courses/{course}/assignments/bigone"
    assert httpx.put(assignment, json={"files": [entry]}, headers=headers).status_code == 201
    back = httpx.get(url, headers=headers, timeout=120)
    assert back.status_code == 200 and hashlib.sha256(back.content).hexdigest() == sha


@pytest.mark.parametrize(
    "size, step, budget",
    [
        (WRITE_BATCH * 9 + 5, 300_001, WRITE_BATCH),  # lists of reads, a wait per batch
        (WRITE_BATCH * 4, WRITE_BATCH // 4, WRITE_BATCH),  # ending on a batch's last byte
        (LARGE_FILE + WRITE_BATCH * 5 + 3, 300_001, 64 * WRITE_BATCH),  # the ring, reused
        (LARGE_FILE + 3, 300_001, WRITE_BATCH),  # the ring, let go before each wait
    ],
)
def test_upload_batches_stay_unchanged_and_are_repaid_to_the_budget_as_written(size, step, budget):
    """`upload.write` may return while its batch is still hashed (a large upload):
    that batch must not change before the next `write` returns. The writer here
    keeps each batch "in use" until its next write returns and checks it was not
    changed meanwhile; it sleeps so the reader runs ahead. A budget of one batch
    makes the reader wait for each repayment (a loan repaid only on the next
    write would deadlock here), and everything is repaid at the end."""

    class SlowUpload:
        def __init__(self):
            self.kept: tuple[list, bytes] | None = None
            self.received = bytearray()

        def write_pieces(self, batch):
            if self.kept is not None:
                pieces, copy = self.kept
                assert b"".join(pieces) == copy, "a batch changed while still in use"
            self.kept = (batch, b"".join(batch))
            self.received += b"".join(batch)
            time.sleep(0.002)

    class Body:
        scope: ClassVar[dict] = {}  # no connection lent: the body comes as uvicorn's reads

        def __init__(self, chunks):
            self.chunks = chunks

        async def stream(self):  # as Starlette's Request.stream: an empty chunk ends it
            for chunk in [*self.chunks, b""]:
                await anyio.sleep(0)
                yield chunk

    data = random.Random(3).randbytes(size)
    chunks = [data[i : i + step] for i in range(0, len(data), step)]
    upload = SlowUpload()
    upload.offset = 0
    memory = MemoryBudget(budget)

    async def receive() -> None:
        with anyio.fail_after(60):
            await receive_body(Body(chunks), upload, size, memory, 60)

    anyio.run(receive)
    assert bytes(upload.received) == data
    assert memory.held == 0
    if budget < LARGE_FILE:
        assert memory.waits > 0


def test_upload_resumes_at_the_server_offset(server, course):
    headers = {"Authorization": f"token {token_for('stu1')}"}
    data = os.urandom(1_000_000)
    sha = hashlib.sha256(data).hexdigest()
    url = f"{server.url}/v2/courses/{course}/blobs/{sha}"
    part = httpx.put(url, params={"size": len(data)}, content=data[:400_000], headers=headers)
    assert part.status_code == 202 and part.json()["offset"] == 400_000
    assert httpx.get(url + "/upload", headers=headers).json() == {
        "sha256": sha, "offset": 400_000, "complete": False
    }  # fmt: skip
    wrong = httpx.put(url, params={"size": len(data), "offset": 0}, content=data, headers=headers)
    assert wrong.status_code == 409 and wrong.json()["error"]["offset"] == 400_000
    rest = httpx.put(
        url, params={"size": len(data), "offset": 400_000}, content=data[400_000:], headers=headers
    )
    assert rest.status_code == 201 and rest.json() == {"sha256": sha, "size": len(data)}


def test_blob_download_needs_access_and_supports_ranges(server, client_for, course, tmp_path):
    client_for("inst1").release(course, "ps1", write_tree(tmp_path / "src", {"q": b"?"}))
    secret = os.urandom(5000)
    client_for("stu1").submit(course, "ps1", write_tree(tmp_path / "s", {"mine": secret}))
    sha = hashlib.sha256(secret).hexdigest()
    url = f"{server.url}/v2/courses/{course}/blobs/{sha}"

    def get(user, **headers):
        return httpx.get(url, headers={"Authorization": f"token {token_for(user)}", **headers})

    assert get("stu2").status_code == 404
    assert get("outsider").status_code == 403
    whole = get("stu1")
    assert whole.content == secret and whole.headers["etag"] == f'"{sha}"'
    part = get("inst1", Range="bytes=100-199")
    assert part.status_code == 206 and part.content == secret[100:200]
    assert part.headers["content-range"] == "bytes 100-199/5000"
    assert get("inst1", Range="bytes=-10").content == secret[-10:]
    assert get("inst1", Range="bytes=6000-").status_code == 416
    assert get("inst1", **{"If-None-Match": f'"{sha}"'}).status_code == 304


def test_archives_of_release_submission_and_collection(server, client_for, course, tmp_path):
    client_for("inst1").release(course, "ps1", write_tree(tmp_path / "src", TREE))
    headers = {"Authorization": f"token {token_for('inst1')}"}
    base = f"{server.url}/v2/courses/{course}/assignments/ps1"
    assert untar(httpx.get(base + "/archive", headers=headers).content) == {
        f"ps1/{p}": d for p, d in TREE.items()
    }
    zipped = httpx.get(base + "/archive", params={"format": "zip"}, headers=headers)
    with zipfile.ZipFile(io.BytesIO(zipped.content)) as archive:
        assert {n: archive.read(n) for n in archive.namelist()} == {
            f"ps1/{p}": d for p, d in TREE.items()
        }
    for student in ("stu1", "stu2"):
        client_for(student).submit(
            course, "ps1", write_tree(tmp_path / student, {"a": student.encode()})
        )
    client_for("stu1").submit(course, "ps1", write_tree(tmp_path / "again", {"a": b"newest"}))
    members = untar(httpx.get(base + "/collect", headers=headers).content)
    index = json.loads(members.pop("submissions.json"))
    assert members == {"stu1/a": b"newest", "stu2/a": b"stu2"}
    assert sorted(i["student"] for i in index) == ["stu1", "stu2"]
    bad = httpx.get(base + "/archive", params={"format": "rar"}, headers=headers)
    assert bad.status_code == 400 and "Unknown archive format" in bad.json()["error"]["message"]


def test_v2_errors_have_their_own_shape(server, course):
    response = httpx.get(
        f"{server.url}/v2/courses/{course}/assignments/nope",
        headers={"Authorization": f"token {token_for('stu1')}"},
    )
    assert response.status_code == 404
    assert response.json() == {
        "error": {"status": 404, "reason": "not_found", "message": "Assignment not found"}
    }
    response = httpx.put(
        f"{server.url}/v2/courses/{course}/assignments/x",
        json={"files": [{"path": "../a", "sha256": "0" * 64, "size": 1}]},
        headers={"Authorization": f"token {token_for('inst1')}"},
    )
    assert response.json()["error"]["message"].startswith(
        "Illegal path '../a': it must be relative"
    )
    response = httpx.put(
        f"{server.url}/v2/courses/{course}/assignments/x",
        json={"files": [{"path": "a", "sha256": "nothex", "size": 1}]},
        headers={"Authorization": f"token {token_for('inst1')}"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["reason"] == "invalid_request"


def test_identical_files_are_downloaded_once_per_client(server, client_for, course, tmp_path):
    client_for("inst1").release(course, "ps1", write_tree(tmp_path / "src", {"q": b"?"}))
    shared = os.urandom(2 * 1024 * 1024)
    for student in ("stu1", "stu2"):
        client_for(student).submit(
            course,
            "ps1",
            write_tree(tmp_path / student, {"data.bin": shared, "me": student.encode()}),
        )
    inst = client_for("inst1")
    sent = {"bytes": 0}
    inst.http.event_hooks["response"].append(
        lambda response: sent.__setitem__(
            "bytes", sent["bytes"] + int(response.headers.get("content-length", 0))
        )
    )
    for listed in inst.submissions(course, "ps1"):
        detail = inst.submission(course, "ps1", listed["student"], listed["id"])
        inst.download_tree(course, detail["files"], tmp_path / "collected" / listed["student"])
    for student in ("stu1", "stu2"):
        assert read_tree(tmp_path / "collected" / student) == {
            "data.bin": shared,
            "me": student.encode(),
        }
    assert sent["bytes"] < len(shared) * 1.5  # the second copy came from the first, not the server
    # a local copy that was changed meanwhile is not trusted: it is fetched again
    (tmp_path / "collected" / "stu2" / "data.bin").write_bytes(b"edited")
    (tmp_path / "collected" / "stu1" / "data.bin").write_bytes(b"edited")
    detail = inst.submission(course, "ps1", "stu1", inst.submissions(course, "ps1")[0]["id"])
    inst.download_tree(course, detail["files"], tmp_path / "again")
    assert (tmp_path / "again" / "data.bin").read_bytes() == shared


def _read_all(path, start=0, stop=None):
    async def collect():
        return [bytes(piece) async for piece in file_pieces(path, start, stop)]

    return anyio.run(collect)


def test_file_pieces_read_cached_bytes_on_the_loop_and_the_rest_on_threads(tmp_path, monkeypatch):
    """Downloads read what the page cache holds without a thread; the disk, on a thread."""
    data = os.urandom(3 * SEND_CHUNK + 1234)
    path = tmp_path / "blob"
    path.write_bytes(data)
    flags = []
    real_preadv = os.preadv

    def preadv(fd, buffers, offset, *flag):
        flags.append(flag[0] if flag else None)
        return real_preadv(fd, buffers, offset, *flag)

    monkeypatch.setattr(os, "preadv", preadv)
    pieces = _read_all(path)
    assert b"".join(pieces) == data and max(map(len, pieces)) <= SEND_CHUNK
    assert flags and None not in flags  # all from the page cache, no thread hop
    assert b"".join(_read_all(path, 1000, 2 * SEND_CHUNK + 7)) == data[1000 : 2 * SEND_CHUNK + 7]

    _evict(path, real_preadv)
    flags.clear()
    assert b"".join(_read_all(path)) == data
    assert None in flags  # at least one piece came from the disk, on a worker thread


def _evict(path, preadv) -> None:
    """Drop the file from the page cache, and check that it is gone.

    DONTNEED skips pages still in another CPU's batch of newly cached pages
    (the kernel drains only the calling CPU's), which made this test fail
    under load: so it is asked from every CPU in turn. It also skips a page
    that something else holds for a moment (likely a memory-reclaim scan:
    DAMON runs in these guests), and once in CI the page stayed: so it is
    asked again, a bounded number of times.
    """
    fd = os.open(path, os.O_RDONLY)
    cpus = os.sched_getaffinity(0)
    try:
        os.fsync(fd)
        for _attempt in range(50):
            for cpu in sorted(cpus):
                os.sched_setaffinity(0, {cpu})
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            try:
                preadv(fd, [bytearray(1)], 0, os.RWF_NOWAIT)
            except BlockingIOError:
                return  # the first page is no longer cached
            time.sleep(0.02)
        pytest.fail("the kernel kept the file's first page cached through 50 DONTNEED rounds")
    finally:
        os.sched_setaffinity(0, cpus)
        os.close(fd)


class _CutStream(httpx.SyncByteStream):
    def __init__(self, stream, cut: int) -> None:
        self.stream = stream
        self.cut = cut

    def __iter__(self):
        sent = 0
        for chunk in self.stream:
            if sent + len(chunk) >= self.cut:
                yield chunk[: self.cut - sent]
                raise httpx.ReadError("connection dropped (injected by the test)")
            sent += len(chunk)
            yield chunk

    def close(self) -> None:
        self.stream.close()


class DropFirstBlob(httpx.BaseTransport):
    """The real transport to the real server, but the first blob download breaks off after
    `cut` bytes, as a dropped connection does (no proxy here can cut a stream on cue)."""

    def __init__(self, cut: int) -> None:
        self.inner = httpx.HTTPTransport()
        self.cut = cut
        self.ranges: list[str | None] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.method == "GET" and "/blobs/" in request.url.path:
            self.ranges.append(request.headers.get("range"))
            if len(self.ranges) == 1:
                response.stream = _CutStream(response.stream, self.cut)
        return response

    def close(self) -> None:
        self.inner.close()


@pytest.mark.parametrize("background", [False, True])
def test_dropped_download_resumes_with_a_range(
    server, client_for, course, tmp_path, monkeypatch, background
):
    """A download cut mid-way continues from the bytes received, on both write paths."""
    data = os.urandom(9 * 1024 * 1024 + 7)
    client_for("inst1").release(course, "ps1", write_tree(tmp_path / "src", {"big.bin": data}))
    if background:  # large downloads are written and hashed on a second thread
        monkeypatch.setattr("ngshare.client.http.HASH_ALONGSIDE", 1024 * 1024)
    cut = 5 * 1024 * 1024 + 3
    transport = DropFirstBlob(cut)
    with NgshareClient(server.url, token_for("stu1"), backoff=0.01, transport=transport) as stu:
        stu.fetch_assignment(course, "ps1", tmp_path / "got")
    assert (tmp_path / "got" / "big.bin").read_bytes() == data
    assert transport.ranges == [None, f"bytes={cut}-"]


class Flaky(httpx.BaseTransport):
    """The real transport to the real server, but the first request to each path that
    `matches` fails: a 503 (as a restarting proxy answers) or a refused connection."""

    def __init__(self, matches, failure: str) -> None:
        self.inner = httpx.HTTPTransport()
        self.matches = matches
        self.failure = failure
        self.failed: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        key = f"{request.method} {request.url.path}"
        if self.matches(request) and key not in self.failed:
            self.failed.append(key)
            if self.failure == "connect":
                raise httpx.ConnectError("connection refused (injected by the test)")
            return httpx.Response(503, json={"error": {"message": "restarting"}})
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


@pytest.mark.parametrize("failure", ["503", "connect"])
def test_every_kind_of_request_is_retried_once_it_fails(server, course, tmp_path, failure):
    """Manifest reads (carrying small files), missing-blob questions, batch and
    single-blob uploads, bundled commits, batch and single-blob downloads: each is
    sent again after a 503 or a refused connection."""
    tree = {"a.txt": os.urandom(70), "b.txt": os.urandom(5), "big.bin": os.urandom(9 << 20)}
    transport = Flaky(lambda request: "/v2/" in request.url.path, failure)
    with NgshareClient(server.url, token_for("inst1"), backoff=0.01, transport=transport) as inst:
        inst.release(course, "ps1", write_tree(tmp_path / "src", tree))
    with NgshareClient(server.url, token_for("stu1"), backoff=0.01, transport=transport) as stu:
        manifest = stu.fetch_assignment(course, "ps1", tmp_path / "got")
        (tmp_path / "got" / "a.txt").write_bytes(b"answered")
        made = stu.submit(course, "ps1", tmp_path / "got")
    with NgshareClient(server.url, token_for("stu1"), backoff=0.01, transport=transport) as stu:
        stu.download_tree(course, manifest["files"], tmp_path / "again")  # no files carried
    with NgshareClient(server.url, token_for("inst1"), backoff=0.01, transport=transport) as inst:
        inst.put_solutions(course, "ps1", write_tree(tmp_path / "sol", {"s.txt": b"42"}))
        inst.upload_files(course, inst.scan(write_tree(tmp_path / "more", {"m.txt": b"7"})))
    assert read_tree(tmp_path / "got") == {**tree, "a.txt": b"answered"}
    assert read_tree(tmp_path / "again") == tree
    assert len(stu_submissions(server, course)) == 1 and made["file_count"] == 3
    big = hashlib.sha256(tree["big.bin"]).hexdigest()
    failed = [key.replace(f"/api/v2/courses/{course}/", "") for key in transport.failed]
    expected = [
        "POST blobs/missing",  # the question
        f"PUT blobs/{big}",  # the large file, resumed after asking for the offset
        f"GET blobs/{big}/upload",
        "PUT assignments/ps1",  # the commit, with the small files (a bundle)
        "GET assignments/ps1",  # the student's manifest carrying the small files,
        f"GET blobs/{big}",  # the large file, the report
        "POST events",
        "POST assignments/ps1/submissions",  # a bundle, repeated with its Idempotency-Key
        "POST blobs/batch",  # the small files again, for a client that has not got them
        "PUT assignments/ps1/solutions",  # a bundle too
        "POST blobs",  # a batch of small files uploaded without a commit
    ]
    assert failed == expected


def stu_submissions(server, course: str) -> list[dict]:
    headers = {"Authorization": f"token {token_for('inst1')}"}
    url = f"{server.url}/v2/courses/{course}/assignments/ps1/submissions"
    return httpx.get(url, headers=headers).json()["submissions"]


class RecordingUpload:
    """An Upload that keeps what it is given and how it ended."""

    def __init__(self):
        self.offset = 0
        self.received = bytearray()
        self.ended = ""

    def write_pieces(self, pieces):
        for piece in pieces:
            self.received += piece
            self.offset += len(piece)

    def abort(self):
        self.ended = "aborted"

    def suspend(self):
        self.ended = "suspended"


class ScriptedBody:
    """A request body as Starlette streams it, or one whose client hangs up midway."""

    scope: ClassVar[dict] = {}  # no connection lent: the body comes as uvicorn's reads

    def __init__(self, chunks, hang_up: bool = False):
        self.chunks, self.hang_up = chunks, hang_up

    async def stream(self):
        from starlette.requests import ClientDisconnect

        for chunk in self.chunks:
            await anyio.sleep(0)
            yield chunk
        if self.hang_up:
            raise ClientDisconnect()
        yield b""


@pytest.mark.parametrize("size", [3 * WRITE_BATCH, LARGE_FILE + 5], ids=["pieces", "ring"])
def test_a_body_longer_than_declared_is_refused_and_dropped(size):
    data = os.urandom(size + 10)
    chunks = [data[i : i + 300_001] for i in range(0, len(data), 300_001)]
    upload, memory = RecordingUpload(), MemoryBudget(64 * WRITE_BATCH)
    with pytest.raises(BadRequest, match=f"longer than the declared size of {size} bytes"):
        anyio.run(receive_body, ScriptedBody(chunks), upload, size, memory, 60)
    assert upload.ended == "aborted" and memory.held == 0


@pytest.mark.parametrize("size", [3 * WRITE_BATCH, LARGE_FILE + 5], ids=["pieces", "ring"])
def test_a_hung_up_upload_keeps_every_byte_that_arrived(size):
    data = os.urandom(size)
    sent = data[: size // 2 + 12345]
    chunks = [sent[i : i + 300_001] for i in range(0, len(sent), 300_001)]
    upload, memory = RecordingUpload(), MemoryBudget(64 * WRITE_BATCH)
    with pytest.raises(BadRequest, match=f"Connection closed at byte {len(sent)}"):
        anyio.run(receive_body, ScriptedBody(chunks, hang_up=True), upload, size, memory, 60)
    assert upload.ended == "suspended" and bytes(upload.received) == sent
    assert memory.held == 0


def test_the_upload_ring_hands_over_page_aligned_batches():
    """So that the O_DIRECT appender writes them as they are (test_storage_direct)."""
    ring = BatchRing(LARGE_BATCH)
    for _turn in range(5):  # past the fourth buffer: the first one again
        rest = ring.take(memoryview(os.urandom(LARGE_BATCH + 3)))
        assert ring.full and len(rest) == 3
        assert page_aligned(ring.hand_over())
