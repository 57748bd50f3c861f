"""Bulk feedback: many submissions' feedback released in one request, all or none."""

import json

import httpx
import pytest

from ngshare.client import FeedbackFiles, LocalFile, NgshareClient
from ngshare.client.trees import hash_file
from tests import test_v2_bundles
from tests.servers import token_for
from tests.test_v2_bundles import BUNDLE, Recording, bundle, entry, sha, submit

http = test_v2_bundles.http  # the fixtures, shared
released = test_v2_bundles.released


@pytest.fixture
def made(http, course, released):
    """One submission each by stu1 and stu2: student -> submission id."""
    ids = {}
    for student in ("stu1", "stu2"):
        answer = submit(http(student), course, bundle({"data.bin": released}, []))
        assert answer.status_code == 201, answer.text
        ids[student] = answer.json()["id"]
    return ids


def bulk(client, course: str, sets: list[dict], carried: list[bytes], **extra):
    head = {"feedback": sets, "blobs": [{"sha256": sha(d), "size": len(d)} for d in carried]}
    body = json.dumps({**head, **extra}).encode() + b"\n" + b"".join(carried)
    path = f"courses/{course}/assignments/ps1/feedback"
    return client.post(path, content=body, headers={"Content-Type": BUNDLE})


def feedback_of(client, course: str, student: str, submission_id: int):
    path = f"courses/{course}/assignments/ps1/submissions/{student}/{submission_id}/feedback"
    return client.get(path)


def test_one_request_releases_every_students_feedback(http, course, made):
    inst = http("inst1")
    one, two = b"<p>stu1: good</p>", b"<p>stu2: better</p>"
    sets = [
        {"student": "stu1", "submission_id": made["stu1"], "files": [entry("ps1.html", one)]},
        {"student": "stu2", "submission_id": made["stu2"], "files": [entry("ps1.html", two)]},
    ]
    answer = bulk(inst, course, sets, [one, two])
    assert answer.status_code == 200, answer.text
    first = answer.json()["feedback"]
    assert [(r["student"], r["submission_id"], r["changed"]) for r in first] == [
        ("stu1", made["stu1"], True),
        ("stu2", made["stu2"], True),
    ]
    for student, data in (("stu1", one), ("stu2", two)):
        mine = http(student)
        files = feedback_of(mine, course, student, made[student]).json()["files"]
        assert [f["sha256"] for f in files] == [sha(data)]
        assert mine.get(f"courses/{course}/blobs/{sha(data)}").content == data
    # the same sets again change nothing; JSON alone (blobs all stored) is enough
    again = inst.post(f"courses/{course}/assignments/ps1/feedback", json={"feedback": sets})
    assert again.status_code == 200, again.text
    assert [r["changed"] for r in again.json()["feedback"]] == [False, False]
    assert [r["updated_at"] for r in again.json()["feedback"]] == [r["updated_at"] for r in first]
    history = inst.get(f"courses/{course}/events", params={"action": "feedback_release"}).json()
    assert sorted(e["student"] for e in history["events"]) == ["stu1", "stu2"]


def test_all_or_none_when_one_submission_is_not_the_students(http, course, made):
    inst = http("inst1")
    report = b"<p>mixed up</p>"
    sets = [
        {"student": "stu1", "submission_id": made["stu1"], "files": [entry("a.html", report)]},
        {"student": "stu1", "submission_id": made["stu2"], "files": [entry("a.html", report)]},
    ]
    answer = bulk(inst, course, sets, [report])
    assert answer.status_code == 404, answer.text
    error = answer.json()["error"]
    assert f"stu1/{made['stu2']}" in error["message"]
    assert error["unknown"] == [f"stu1/{made['stu2']}"]
    assert feedback_of(inst, course, "stu1", made["stu1"]).status_code == 404  # none released
    # refused before the bundle's blobs were stored
    assert inst.get(f"courses/{course}/blobs/{sha(report)}").status_code == 404


@pytest.mark.parametrize(
    ("change", "status", "words"),
    [
        (lambda s, ids: [*s, dict(s[0])], 400, "named more than once"),
        (lambda s, ids: [], 400, "at least 1 item"),
        (
            lambda s, ids: [{**s[0], "files": [entry("../x.html", b"x")]}],
            400,
            "Illegal path '../x.html'",
        ),
        (lambda s, ids: [{**s[0], "submission_id": "one"}], 400, "submission_id"),
    ],
)
def test_bad_sets_are_refused_naming_the_problem(http, course, made, change, status, words):
    inst = http("inst1")
    good = [{"student": "stu1", "submission_id": made["stu1"], "files": []}]
    answer = inst.post(
        f"courses/{course}/assignments/ps1/feedback", json={"feedback": change(good, made)}
    )
    assert answer.status_code == status, answer.text
    assert words in answer.text
    assert feedback_of(inst, course, "stu1", made["stu1"]).status_code == 404


def test_missing_blobs_of_every_set_are_named_together(http, course, made):
    inst = http("inst1")
    one, two = b"<p>never sent 1</p>", b"<p>never sent 2</p>"
    sets = [
        {"student": "stu1", "submission_id": made["stu1"], "files": [entry("a.html", one)]},
        {"student": "stu2", "submission_id": made["stu2"], "files": [entry("a.html", two)]},
    ]
    answer = inst.post(f"courses/{course}/assignments/ps1/feedback", json={"feedback": sets})
    assert answer.status_code == 409, answer.text
    assert answer.json()["error"]["reason"] == "blobs_missing"
    assert sorted(answer.json()["error"]["missing"]) == sorted([sha(one), sha(two)])
    assert feedback_of(inst, course, "stu1", made["stu1"]).status_code == 404


def test_students_cannot_release_feedback(http, course, made):
    answer = http("stu1").post(
        f"courses/{course}/assignments/ps1/feedback",
        json={"feedback": [{"student": "stu1", "submission_id": made["stu1"], "files": []}]},
    )
    assert answer.status_code == 403, answer.text


def test_the_client_releases_a_class_in_one_request(server, course, made, tmp_path):
    sets = [
        FeedbackFiles(
            s, made[s], feedback_files(tmp_path / s, {"ps1.html": f"<p>{s}</p>".encode()})
        )
        for s in ("stu1", "stu2")
    ]
    transport = Recording()
    with NgshareClient(server.url, token_for("inst1"), transport=transport) as inst:
        released = inst.put_feedback_many(course, "ps1", sets)
    assert transport.sent == ["POST assignments/ps1/feedback"]
    assert [r["student"] for r in released] == ["stu1", "stu2"]
    with NgshareClient(server.url, token_for("stu2")) as stu:
        got = stu.feedback(course, "ps1", "stu2", made["stu2"])
        stu.download_tree(course, got["files"], tmp_path / "got")
    assert (tmp_path / "got" / "ps1.html").read_bytes() == b"<p>stu2</p>"


def tree_of(root, files: dict[str, bytes]):
    root.mkdir(parents=True)
    for name, data in files.items():
        (root / name).write_bytes(data)
    return root


def feedback_files(root, files: dict[str, bytes]) -> list[LocalFile]:
    tree_of(root, files)
    found = []
    for name in sorted(files):
        digest, size = hash_file(root / name)
        found.append(LocalFile(name, root / name, digest, size, False))
    return found


def test_releases_racing_for_one_submission_never_fail_with_500(http, course, made):
    """Eight requests (single and bulk) release stu1's feedback at once: each is
    released or told to retry (409), and one set is left (on PostgreSQL the
    inserts really race; SQLite takes one writer at a time)."""
    from concurrent.futures import ThreadPoolExecutor

    inst = http("inst1")
    reports = [b"<p>take %d</p>" % i for i in range(8)]
    stored = inst.post(
        f"courses/{course}/blobs",
        content=bundle(
            {}, reports, {"blobs": [{"sha256": sha(r), "size": len(r)} for r in reports]}
        ),
        headers={"Content-Type": "application/vnd.ngshare.blob-batch"},
    )
    assert stored.status_code == 200, stored.text
    one = f"courses/{course}/assignments/ps1/submissions/stu1/{made['stu1']}/feedback"

    def release(i: int):
        files = [entry("r.html", reports[i])]
        if i % 2:
            return inst.put(one, json={"files": files}).status_code
        sets = [{"student": "stu1", "submission_id": made["stu1"], "files": files}]
        path = f"courses/{course}/assignments/ps1/feedback"
        return inst.post(path, json={"feedback": sets}).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(release, range(8)))
    assert set(statuses) <= {200, 409}, statuses
    assert 200 in statuses
    files = inst.get(one).json()["files"]
    assert len(files) == 1 and files[0]["sha256"] in {sha(r) for r in reports}


class WithoutBulkRoute(Recording):
    """The real server, except that the bulk route answers as a server from before it
    existed would (404, reason http). Not a real older server: none is installable
    here; every other request reaches the real one."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path.endswith("/assignments/ps1/feedback"):
            request.read()
            self.sent.append("POST assignments/ps1/feedback")
            error = {"status": 404, "reason": "http", "message": "Not found"}
            return httpx.Response(404, json={"error": error})
        return super().handle_request(request)


def test_a_server_without_the_bulk_route_gets_one_request_per_set(server, course, made, tmp_path):
    sets = [
        FeedbackFiles(s, made[s], feedback_files(tmp_path / s, {"r.html": s.encode()}))
        for s in ("stu1", "stu2")
    ]
    transport = WithoutBulkRoute()
    with NgshareClient(server.url, token_for("inst1"), transport=transport) as inst:
        released = inst.put_feedback_many(course, "ps1", sets, per_request=1)
    puts = [f"PUT assignments/ps1/submissions/{s}/{made[s]}/feedback" for s in ("stu1", "stu2")]
    # asked once; after the 404 every set goes by itself
    assert transport.sent == ["POST assignments/ps1/feedback", *puts]
    assert [(r["student"], r["changed"]) for r in released] == [("stu1", None), ("stu2", None)]
    with NgshareClient(server.url, token_for("stu2")) as stu:
        assert stu.feedback(course, "ps1", "stu2", made["stu2"])["files"][0]["size"] == 4
