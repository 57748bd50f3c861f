"""A client that knows what a course holds submits in one request, carrying only edits."""

import os

from ngshare.client import NgshareClient
from ngshare.client.known import MAX_PER_SCOPE, KnownBlobs, beside
from ngshare.client.local import HashCache
from tests.servers import token_for
from tests.test_v2_bundles import Recording, sha
from tests.test_v2_transfers import read_tree, write_tree


def student(server, cache, transport=None) -> NgshareClient:
    """A student's client as the plugin makes one per nbgrader command: its memory on disk."""
    known = KnownBlobs(beside(cache))
    return NgshareClient(
        server.url, token_for("stu1"), hashes=HashCache(cache), known=known, transport=transport
    )


RELEASE = {
    "a.ipynb": os.urandom(150_000),
    "b.ipynb": os.urandom(120_000),
    "data.bin": os.urandom(9 * 1024 * 1024),  # above the small-file size: never carried
}


def test_after_a_fetch_a_submit_is_one_request_carrying_only_the_edits(server, course, tmp_path):
    with NgshareClient(server.url, token_for("inst1")) as inst:
        inst.release(course, "ps1", write_tree(tmp_path / "src", RELEASE))
    cache, work = tmp_path / "home" / "hashes.json", tmp_path / "work" / "ps1"
    with student(server, cache) as stu:  # nbgrader fetch
        stu.fetch_assignment(course, "ps1", work)
    assert beside(cache).is_file()

    edited = os.urandom(160_000)
    (work / "a.ipynb").write_bytes(edited)
    transport = Recording()
    with student(server, cache, transport) as stu:  # nbgrader submit, a new process
        first = stu.submit(course, "ps1", work)
    assert transport.sent == ["POST assignments/ps1/submissions"]
    assert transport.carried == [[sha(edited)]]

    again = os.urandom(130_000)
    (work / "b.ipynb").write_bytes(again)
    transport = Recording()
    with student(server, cache, transport) as stu:  # a resubmission: a.ipynb was sent before
        second = stu.submit(course, "ps1", work)
        files = stu.submission(course, "ps1", "stu1", second["id"])["files"]
        stu.download_tree(course, files, tmp_path / "got")
    assert transport.sent[0] == "POST assignments/ps1/submissions"
    assert transport.carried == [[sha(again)]]
    assert second["id"] != first["id"]
    assert read_tree(tmp_path / "got") == {**RELEASE, "a.ipynb": edited, "b.ipynb": again}


def test_a_blob_the_client_wrongly_believes_present_is_sent_after_the_409(server, course, tmp_path):
    """As if the server collected a blob since the client learned of it."""
    with NgshareClient(server.url, token_for("inst1")) as inst:
        inst.release(course, "ps1", write_tree(tmp_path / "src", {"q.txt": b"?"}))
    extra = os.urandom(9 * 1024 * 1024 + 1)
    cache, work = tmp_path / "home" / "hashes.json", tmp_path / "work" / "ps1"
    with student(server, cache) as stu:
        stu.fetch_assignment(course, "ps1", work)
        stu.known.add(stu._scope(course), [sha(extra)])  # the stale belief
    (work / "extra.bin").write_bytes(extra)
    transport = Recording()
    with student(server, cache, transport) as stu:
        made = stu.submit(course, "ps1", work)
        scope = stu._scope(course)
    assert transport.sent == [
        "POST assignments/ps1/submissions",  # 409: the server lacks extra.bin
        f"PUT blobs/{sha(extra)}",
        "POST assignments/ps1/submissions",  # the manifest alone
    ]
    assert made["file_count"] == 2
    assert sha(extra) in KnownBlobs(beside(cache)).known(scope)  # present now, and kept


def test_knowledge_of_one_course_is_not_used_for_another(server, course, api, tmp_path):
    other = course + "x"
    assert api("admin").post(f"course/{other}", data={"instructors": '["inst1"]'}).is_success
    names = {"first_name": "S", "last_name": "T", "email": "s@x.org"}
    assert api("inst1").post(f"student/{other}/stu1", data=names).is_success
    for name in (course, other):
        with NgshareClient(server.url, token_for("inst1")) as inst:
            inst.release(name, "ps1", write_tree(tmp_path / f"src-{name}", RELEASE))
    cache = tmp_path / "home" / "hashes.json"
    with student(server, cache) as stu:
        stu.fetch_assignment(course, "ps1", tmp_path / "w1")
    transport = Recording()
    with student(server, cache, transport) as stu:  # the same files, unseen in `other`
        stu.submit(other, "ps1", tmp_path / "w1")
    assert transport.sent == ["POST blobs/missing", "POST assignments/ps1/submissions"]
    assert transport.carried == [[]]  # the server holds them all there: nothing carried


def test_known_blobs_persist_stay_bounded_and_survive_a_bad_file(tmp_path):
    path = tmp_path / "hashes.blobs.json"
    known = KnownBlobs(path)
    known.add("s1", ["a", "b"])
    known.add("s2", ["c"])
    known.forget("s1", ["a", "zz"])
    known.save()
    again = KnownBlobs(path)
    assert again.known("s1") == {"b"} and again.known("s2") == {"c"}
    again.add("s1", [f"h{n}" for n in range(MAX_PER_SCOPE + 10)])
    assert len(again.known("s1")) == MAX_PER_SCOPE
    assert "h0" not in again.known("s1") and f"h{MAX_PER_SCOPE + 9}" in again.known("s1")
    for bad in ("{not json", '["a list"]', '{"s1": "not a list"}'):
        path.write_text(bad)
        assert KnownBlobs(path).known("s1") == set()
    assert beside(tmp_path / "hashes.json") == tmp_path / "hashes.blobs.json"
