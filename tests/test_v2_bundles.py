"""Bundles: a submission or feedback set committed with its small files in one request."""

import hashlib
import json
import os

import httpx
import pytest

from ngshare.client import ClientError, NgshareClient
from tests.servers import token_for
from tests.test_v2_transfers import read_tree, write_tree

BUNDLE = "application/vnd.ngshare.bundle"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def entry(path: str, data: bytes) -> dict:
    return {"path": path, "sha256": sha(data), "size": len(data), "executable": False}


def bundle(files: dict[str, bytes], carried: list[bytes], header: dict | None = None) -> bytes:
    line = header or {
        "files": [entry(p, d) for p, d in files.items()],
        "blobs": [{"sha256": sha(d), "size": len(d)} for d in carried],
    }
    return json.dumps(line).encode() + b"\n" + b"".join(carried)


@pytest.fixture
def http(server):
    made = []

    def make(user: str) -> httpx.Client:
        made.append(
            httpx.Client(
                base_url=server.url + "/v2/",
                headers={"Authorization": f"token {token_for(user)}"},
                timeout=30,
            )
        )
        return made[-1]

    yield make
    for client in made:
        client.close()


@pytest.fixture
def released(http, course):
    """ps1 released with one large file (which students then name by hash only)."""
    big = os.urandom(2 * 1024 * 1024 + 3)
    inst = http("inst1")
    head = json.dumps({"blobs": [{"sha256": sha(big), "size": len(big)}]}).encode() + b"\n"
    stored = inst.post(
        f"courses/{course}/blobs",
        content=head + big,
        headers={"Content-Type": "application/vnd.ngshare.blob-batch"},
    )
    assert stored.status_code == 200, stored.text
    answer = inst.put(f"courses/{course}/assignments/ps1", json={"files": [entry("data.bin", big)]})
    assert answer.status_code == 201, answer.text
    return big


def submit(client: httpx.Client, course: str, body: bytes, key: str | None = None):
    headers = {"Content-Type": BUNDLE, **({"Idempotency-Key": key} if key else {})}
    path = f"courses/{course}/assignments/ps1/submissions"
    return client.post(path, content=body, headers=headers)


def submissions(http, course: str, student: str = "stu1") -> list[dict]:
    answer = http("inst1").get(f"courses/{course}/assignments/ps1/submissions/{student}")
    return answer.json()["submissions"]


def missing(client: httpx.Client, course: str, hashes: list[str]) -> set[str]:
    answer = client.post(f"courses/{course}/blobs/missing", json={"sha256": hashes})
    return set(answer.json()["missing"])


def test_a_bundle_submits_carried_and_named_files_in_one_request(http, course, released):
    stu = http("stu1")
    one, two = os.urandom(3000), b'{"cells": []}'
    files = {"ps1.ipynb": one, "notes.txt": two, "data.bin": released}
    answer = submit(stu, course, bundle(files, [one, two]))
    assert answer.status_code == 201, answer.text
    made = answer.json()
    assert made["file_count"] == 3 and made["total_size"] == sum(map(len, files.values()))
    detail = stu.get(f"courses/{course}/assignments/ps1/submissions/stu1/{made['id']}").json()
    listed = {f["path"]: f["sha256"] for f in detail["files"]}
    assert listed == {p: sha(d) for p, d in files.items()}
    for data in (one, two):
        assert stu.get(f"courses/{course}/blobs/{sha(data)}").content == data
    assert [s["id"] for s in submissions(http, course)] == [made["id"]]


def test_a_named_blob_nobody_sent_is_409_and_nothing_is_submitted(http, course, released):
    stu = http("stu1")
    carried, absent = os.urandom(500), os.urandom(700)
    files = {"a.ipynb": carried, "b.bin": absent}
    answer = submit(stu, course, bundle(files, [carried]))
    assert answer.status_code == 409, answer.text
    error = answer.json()["error"]
    assert error["reason"] == "blobs_missing" and error["missing"] == [sha(absent)]
    assert submissions(http, course) == []
    # what it carried was stored: the retry need not send it again
    assert missing(stu, course, [sha(carried), sha(absent)]) == {sha(absent)}


def test_a_mismatched_blob_is_400_and_nothing_is_submitted(http, course, released):
    stu = http("stu1")
    good, bad = os.urandom(100), os.urandom(200)
    header = {
        "files": [entry("a", good), {**entry("b", bad), "sha256": sha(b"other")}],
        "blobs": [{"sha256": sha(good), "size": 100}, {"sha256": sha(b"other"), "size": 200}],
    }
    answer = submit(stu, course, bundle({}, [good, bad], header))
    assert answer.status_code == 400
    assert answer.json()["error"]["reason"] == "hash_mismatch"
    assert submissions(http, course) == []
    assert missing(stu, course, [sha(b"other")]) == {sha(b"other")}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json\n", "first line is not valid"),
        (b'{"blobs": []}\n', "first line is not valid"),
        (b'{"files": [], "blobs": []', "must start with one line"),
        (bundle({"a": b"12"}, [b"12"]) + b"more", "more bytes than the blobs"),
        (bundle({"a": b"12"}, [b"12"])[:-1], "ended 1 bytes before"),
        (bundle({"a": b"1"}, [b"1", b"2"]), "which no file names"),
        (bundle({}, [], {"files": [], "blobs": [{"sha256": "xyz", "size": 1}]}), "sha256"),
        (bundle({"../a": b"1"}, [b"1"]), "path"),
    ],
)
def test_bad_bundles_are_400_naming_the_problem(http, course, released, body, message):
    answer = submit(http("stu1"), course, body)
    assert answer.status_code == 400, answer.text
    assert message in answer.json()["error"]["message"]
    assert submissions(http, course) == []


def test_a_refused_bundle_is_read_to_its_end_and_stores_nothing(http, course, released):
    """The assignment does not exist: 404 before any blob is stored, and the client,
    which sends its whole body before it reads, still hears it (no reset connection)."""
    stu = http("stu1")
    carried = os.urandom(3 * 1024 * 1024)
    headers = {"Content-Type": BUNDLE}
    path = f"courses/{course}/assignments/nothere/submissions"
    answer = stu.post(path, content=bundle({"a": carried}, [carried]), headers=headers)
    assert answer.status_code == 404, answer.text
    assert answer.json()["error"]["message"] == "Assignment not found"
    assert missing(stu, course, [sha(carried)]) == {sha(carried)}
    # the same connection serves the next request
    assert stu.get(f"courses/{course}/assignments").status_code == 200


def test_a_repeated_bundle_with_its_key_is_one_submission(http, course, released):
    stu = http("stu1")
    data = os.urandom(1000)
    body = bundle({"a": data, "data.bin": released}, [data])
    first = submit(stu, course, body, key="k-1")
    again = submit(stu, course, body, key="k-1")
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json() == again.json()
    assert len(submissions(http, course)) == 1


def test_feedback_takes_a_bundle_too(http, course, released):
    stu, inst = http("stu1"), http("inst1")
    made = submit(stu, course, bundle({"data.bin": released}, [])).json()
    report = b"<html>well done</html>"
    path = f"courses/{course}/assignments/ps1/submissions/stu1/{made['id']}/feedback"
    answer = inst.put(path, content=bundle({"r.html": report}, [report]), headers={
        "Content-Type": BUNDLE
    })  # fmt: skip
    assert answer.status_code == 200, answer.text
    assert [f["path"] for f in stu.get(path).json()["files"]] == ["r.html"]
    assert stu.get(f"courses/{course}/blobs/{sha(report)}").content == report


class Recording(httpx.BaseTransport):
    """The real transport, recording each request and the blobs each bundle
    carries; `lie_missing` answers the missing-blobs question with "none" (as
    if a blob vanished right after)."""

    def __init__(self, lie_missing: bool = False) -> None:
        self.inner = httpx.HTTPTransport()
        self.lie_missing = lie_missing
        self.sent: list[str] = []
        self.carried: list[list[str]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.split("/v2/courses/", 1)[-1].split("/", 1)[-1]
        self.sent.append(f"{request.method} {path}")
        if request.headers.get("content-type") == BUNDLE:
            head = json.loads(request.read().split(b"\n", 1)[0])
            self.carried.append([blob["sha256"] for blob in head.get("blobs", [])])
        if self.lie_missing and path == "blobs/missing":
            request.read()
            return httpx.Response(200, json={"missing": []})
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


def test_the_client_submits_in_two_requests_feedback_and_solutions_in_one(server, course, tmp_path):
    big = os.urandom(9 * 1024 * 1024)  # above the client's small-file size: never bundled
    with NgshareClient(server.url, token_for("inst1")) as inst:
        inst.release(course, "ps1", write_tree(tmp_path / "src", {"data.bin": big}))
    tree = {"ps1.ipynb": os.urandom(100_000), "b.ipynb": os.urandom(90_000), "data.bin": big}
    transport = Recording()
    with NgshareClient(server.url, token_for("stu1"), transport=transport) as stu:
        made = stu.submit(course, "ps1", write_tree(tmp_path / "s", tree))
    assert transport.sent == ["POST blobs/missing", "POST assignments/ps1/submissions"]
    transport = Recording()
    with NgshareClient(server.url, token_for("inst1"), transport=transport) as inst:
        feedback = write_tree(tmp_path / "fb", {"ps1.html": b"<p>fine</p>"})
        inst.put_feedback(course, "ps1", "stu1", made["id"], feedback)
        files = inst.submission(course, "ps1", "stu1", made["id"])["files"]
        inst.download_tree(course, files, tmp_path / "got")
    assert transport.sent[0] == f"PUT assignments/ps1/submissions/stu1/{made['id']}/feedback"
    assert len([s for s in transport.sent if s.startswith("PUT")]) == 1
    assert read_tree(tmp_path / "got") == tree
    transport = Recording()
    with NgshareClient(server.url, token_for("inst1"), transport=transport) as inst:
        inst.put_solutions(course, "ps1", write_tree(tmp_path / "sol", {"s.py": b"x = 42"}))
        got = inst.solutions(course, "ps1")
        inst.download_tree(course, got["files"], tmp_path / "sol-got")
    assert transport.sent[0] == "PUT assignments/ps1/solutions"  # solutions: one request too
    assert read_tree(tmp_path / "sol-got") == {"s.py": b"x = 42"}


def test_the_client_sends_what_the_server_still_lacks_then_commits(server, course, tmp_path):
    """The server answers 409 with the blobs it lacks; the client uploads them and
    commits the manifest alone (a real server; only the first answer is a lie)."""
    with NgshareClient(server.url, token_for("inst1")) as inst:
        inst.release(course, "ps1", write_tree(tmp_path / "src", {"q.txt": b"?"}))
    big = os.urandom(9 * 1024 * 1024 + 1)
    tree = {"ps1.ipynb": os.urandom(70_000), "data.bin": big}
    transport = Recording(lie_missing=True)
    with NgshareClient(server.url, token_for("stu1"), transport=transport) as stu:
        made = stu.submit(course, "ps1", write_tree(tmp_path / "s", tree))
        assert transport.sent == [
            "POST blobs/missing",  # answered "none": the bundle carries nothing
            "POST assignments/ps1/submissions",  # 409, naming both files
            "POST blobs",  # the notebook
            f"PUT blobs/{sha(big)}",  # the data file
            "POST assignments/ps1/submissions",  # the manifest alone
        ]
        assert made["file_count"] == 2
        files = stu.submission(course, "ps1", "stu1", made["id"])["files"]
        stu.download_tree(course, files, tmp_path / "got")
    assert read_tree(tmp_path / "got") == tree


def test_the_client_reports_a_refused_bundle(server, course, tmp_path):
    tree = write_tree(tmp_path / "s", {"a": b"x" * 100_000})
    with (
        NgshareClient(server.url, token_for("stu1"), retries=0) as stu,
        pytest.raises(ClientError) as refused,
    ):
        stu.submit(course, "nothere", tree)
    assert refused.value.status == 404


def test_a_manifest_body_past_its_limit_is_413(http, course, released):
    filler = [entry(f"f{n:07d}-{'x' * 150}", b"") for n in range(90_000)]  # about 19 MiB
    answer = http("stu1").post(
        f"courses/{course}/assignments/ps1/submissions", json={"files": filler}
    )
    assert answer.status_code == 413, answer.text
    assert "A manifest is limited to 16 MiB" in answer.json()["error"]["message"]
