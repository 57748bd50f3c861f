"""Manifest answers carrying their small files (`Accept: application/vnd.ngshare.bundle`)."""

import contextlib
import json
import os

import httpx
import pytest
from starlette.requests import Request

from ngshare.api.v2.inline import INLINE_FILE, INLINE_TOTAL, inline_choice, wants_bundle
from ngshare.api.v2.schemas import ManifestFile
from ngshare.client import ClientError, NgshareClient
from ngshare.client.inline import RecentBlobs, read_answer
from tests.servers import token_for
from tests.test_v2_batches import http  # noqa: F401 (fixture)
from tests.test_v2_bundles import Recording, sha
from tests.test_v2_transfers import read_tree, write_tree

BUNDLE = "application/vnd.ngshare.bundle"
NOTEBOOK = os.urandom(200_000)
RELEASE = {
    "a.ipynb": NOTEBOOK,
    "copy/a.ipynb": NOTEBOOK,  # the same blob twice: carried once
    "b.ipynb": os.urandom(100_000),
    "data.bin": os.urandom(INLINE_FILE + 1),  # too large to carry
}


def release(server, course, tmp_path, files=RELEASE, name="ps1"):
    with NgshareClient(server.url, token_for("inst1")) as inst:
        inst.release(course, name, write_tree(tmp_path / name, files))


def split_bundle(response: httpx.Response) -> tuple[dict, bytes]:
    line, _, rest = response.content.partition(b"\n")
    return json.loads(line), rest


def test_the_manifest_carries_its_small_files_when_asked(server, course, tmp_path, http):  # noqa: F811
    release(server, course, tmp_path)
    stu = http("stu1")
    plain = stu.get(f"courses/{course}/assignments/ps1")
    assert plain.headers["content-type"] == "application/json"
    assert plain.headers["vary"] == "Accept"
    assert "blobs" not in plain.json()

    bundled = stu.get(f"courses/{course}/assignments/ps1", headers={"Accept": BUNDLE})
    assert bundled.status_code == 200
    assert bundled.headers["content-type"] == BUNDLE
    assert bundled.headers["vary"] == "Accept"
    assert int(bundled.headers["content-length"]) == len(bundled.content)
    head, rest = split_bundle(bundled)
    blobs = head.pop("blobs")
    assert head == plain.json()
    small = [sha(NOTEBOOK), sha(RELEASE["b.ipynb"])]  # manifest order is by path
    assert sorted(b["sha256"] for b in blobs) == sorted(small)
    assert rest == b"".join({sha(d): d for d in RELEASE.values()}[b["sha256"]] for b in blobs)


def test_accept_must_name_the_bundle(server, course, tmp_path, http):  # noqa: F811
    release(server, course, tmp_path)
    stu = http("stu1")
    for accept in ("*/*", "application/*", f"{BUNDLE};q=0", "application/json"):
        answer = stu.get(f"courses/{course}/assignments/ps1", headers={"Accept": accept})
        assert answer.headers["content-type"] == "application/json", accept
    missing = stu.get(f"courses/{course}/assignments/nope", headers={"Accept": BUNDLE})
    assert missing.status_code == 404
    assert missing.json()["error"]["reason"] == "not_found"
    others = f"courses/{course}/assignments/ps1/submissions/stu1/1/feedback"
    refused = http("stu2").get(others, headers={"Accept": BUNDLE})
    assert refused.status_code == 403
    assert refused.json()["error"]["reason"] == "permission_denied"


def test_choice_and_accept_rules():
    def entry(name: str, size: int, digest: str) -> ManifestFile:
        return ManifestFile(path=name, sha256=digest * 64, size=size)

    near = INLINE_FILE - 10
    files = [entry(f"f{i}", near, "0123456789"[i]) for i in range(5)]
    files += [entry("dup", near, "0"), entry("tiny", 10, "a"), entry("big", INLINE_FILE + 1, "b")]
    chosen = inline_choice(files)
    assert [f.path for f in chosen] == ["f0", "f1", "f2", "f3", "tiny"]
    assert sum(f.size for f in chosen) <= INLINE_TOTAL

    def request(accept: str) -> Request:
        return Request({"type": "http", "headers": [(b"accept", accept.encode())]})

    assert wants_bundle(request(f"application/json;q=0.9, {BUNDLE}"))
    assert wants_bundle(request(f"{BUNDLE.upper()}; q=0.5"))
    assert not wants_bundle(request(f"{BUNDLE}; q=0"))
    assert not wants_bundle(request(f"{BUNDLE}; q=x"))
    assert not wants_bundle(request("*/*"))


class AskRecording(Recording):
    """Also records the blobs each batch download asks for."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[list[str]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/blobs/batch"):
            self.asked.append(json.loads(request.read())["sha256"])
        return super().handle_request(request)


def test_a_fetch_asks_only_for_the_files_the_manifest_did_not_carry(server, course, tmp_path):
    release(server, course, tmp_path)
    transport = AskRecording()
    dest = tmp_path / "fetched"
    with NgshareClient(server.url, token_for("stu1"), transport=transport) as stu:
        stu.fetch_assignment(course, "ps1", dest)
    assert read_tree(dest) == RELEASE
    assert transport.sent == ["GET assignments/ps1", "POST blobs/batch", "POST events"]
    assert transport.asked == [[sha(RELEASE["data.bin"])]]  # too large to come with it

    only_notebooks = {k: v for k, v in RELEASE.items() if k != "data.bin"}
    release(server, course, tmp_path, only_notebooks, name="ps3")
    transport = AskRecording()
    with NgshareClient(server.url, token_for("stu1"), transport=transport) as stu:
        stu.fetch_assignment(course, "ps3", tmp_path / "ps3-fetched")
    assert read_tree(tmp_path / "ps3-fetched") == only_notebooks
    assert transport.sent == ["GET assignments/ps3", "POST events"]


def test_a_corrupt_carried_file_is_refused_and_nothing_is_written(server, course, tmp_path):
    corrupt = os.urandom(5000)
    release(server, course, tmp_path, {"q.ipynb": corrupt}, name="ps2")
    dest = tmp_path / "fetched"
    rotten = os.urandom(len(corrupt))  # the disk's copy rots, same size
    stu = NgshareClient(server.url, token_for("stu1"))
    with damaged(server, corrupt, rotten), stu:
        with pytest.raises(ClientError, match="corrupt"):
            stu.fetch_assignment(course, "ps2", dest)
        assert len(stu.recent) == 0
    assert not dest.exists()


@contextlib.contextmanager
def damaged(server, data: bytes, replacement: bytes | None):
    """The stored blob of `data` replaced (None: deleted) for a while, then put back:
    the session's server is shared with other test modules."""
    stored = server.data_dir / "blobs" / sha(data)[:2] / sha(data)[2:4] / sha(data)
    if replacement is None:
        stored.unlink()
    else:
        stored.write_bytes(replacement)
    try:
        yield
    finally:
        stored.write_bytes(data)


def test_feedback_comes_with_its_files_in_one_request(server, course, tmp_path):
    release(server, course, tmp_path, {"ps1.ipynb": b"{}"})
    with NgshareClient(server.url, token_for("stu1")) as stu:
        submitted = stu.submit(course, "ps1", write_tree(tmp_path / "work", {"ps1.ipynb": b"[1]"}))
    report = {"ps1.html": os.urandom(50_000)}
    with NgshareClient(server.url, token_for("inst1")) as inst:
        inst.put_feedback(
            course, "ps1", "stu1", submitted["id"], write_tree(tmp_path / "fb", report)
        )
    transport = Recording()
    with NgshareClient(server.url, token_for("stu1"), transport=transport) as stu:
        answer = stu.feedback(course, "ps1", "stu1", submitted["id"], inline=True)
        stu.download_tree(course, answer["files"], tmp_path / "got")
    assert transport.sent == [f"GET assignments/ps1/submissions/stu1/{submitted['id']}/feedback"]
    assert read_tree(tmp_path / "got") == report
    assert "blobs" not in answer


def response(content: bytes, media_type: str) -> httpx.Response:
    return httpx.Response(200, content=content, headers={"Content-Type": media_type})


def test_the_client_reads_json_and_refuses_malformed_bundles():
    """Answers built in memory: what a server without bundles (JSON) or a broken one
    (the real server never sends these) would answer."""
    assert read_answer(response(b'{"files": []}', "application/json")) == ({"files": []}, {})
    good = b"abc"
    head = json.dumps({"files": [], "blobs": [{"sha256": sha(good), "size": 3}]}).encode()
    assert read_answer(response(head + b"\n" + good, BUNDLE)) == ({"files": []}, {sha(good): good})
    for broken in (head, head + b"\nabcd", head + b"\nabd", b"[1]\nabc", b"nope\n"):
        with pytest.raises(ClientError):
            read_answer(response(broken, BUNDLE))


def test_recent_blobs_keep_the_newest_within_their_limit():
    recent = RecentBlobs(limit=10)
    recent.add({"a": b"1234", "b": b"5678"})
    recent.add({"a": b"1234"})  # used again: the newest
    recent.add({"c": b"90ab"})
    assert recent.get("b") is None
    assert recent.get("a") == b"1234" and recent.get("c") == b"90ab"
    assert len(recent) == 2


def test_a_students_listing_carries_only_the_feedback_files(server, course, tmp_path, http):  # noqa: F811
    release(server, course, tmp_path, {"ps1.ipynb": b"{}"})
    work = {"ps1.ipynb": os.urandom(30_000)}
    with NgshareClient(server.url, token_for("stu1")) as stu:
        first = stu.submit(course, "ps1", write_tree(tmp_path / "w1", work))
        stu.submit(course, "ps1", write_tree(tmp_path / "w2", {"ps1.ipynb": os.urandom(20)}))
    report = os.urandom(40_000)
    with NgshareClient(server.url, token_for("inst1")) as inst:
        inst.put_feedback(
            course, "ps1", "stu1", first["id"], write_tree(tmp_path / "fb", {"r.html": report})
        )
    path = f"courses/{course}/assignments/ps1/submissions/stu1"
    stu = http("stu1")
    plain = stu.get(path, params={"files": "true"})
    bundled = stu.get(path, params={"files": "true"}, headers={"Accept": BUNDLE})
    head, rest = split_bundle(bundled)
    assert head.pop("blobs") == [{"sha256": sha(report), "size": len(report)}]
    assert rest == report
    assert head == plain.json() and len(head["submissions"]) == 2
    without_files = stu.get(path, headers={"Accept": BUNDLE})
    assert without_files.headers["content-type"] == "application/json"

    transport = Recording()
    with NgshareClient(server.url, token_for("stu1"), transport=transport) as client:
        listed = client.student_submissions(course, "ps1", "stu1", files=True, inline=True)
        (graded,) = [s for s in listed if s["feedback"]]
        # as the plugin's fetch_feedback: a prefetch, which has nothing left to fetch
        client.download_trees(course, [graded["feedback"]["files"]], tmp_path / "pre")
        assert not (tmp_path / "pre").exists()
        client.download_tree(course, graded["feedback"]["files"], tmp_path / "got")
    assert transport.sent == ["GET assignments/ps1/submissions/stu1"]
    assert read_tree(tmp_path / "got") == {"r.html": report}


def test_solutions_come_with_their_small_files(server, course, tmp_path, http):  # noqa: F811
    release(server, course, tmp_path, {"ps1.ipynb": b"{}"})
    solution = os.urandom(10_000)
    with NgshareClient(server.url, token_for("inst1")) as inst:
        inst.put_solutions(course, "ps1", write_tree(tmp_path / "sol", {"s.ipynb": solution}))
    answer = http("inst1").get(
        f"courses/{course}/assignments/ps1/solutions", headers={"Accept": BUNDLE}
    )
    head, rest = split_bundle(answer)
    assert head["files"][0]["sha256"] == sha(solution)
    assert head["blobs"] == [{"sha256": sha(solution), "size": len(solution)}]
    assert rest == solution


def test_a_blob_lost_from_the_store_is_not_carried_and_its_download_names_it(
    server,
    course,
    tmp_path,
    http,  # noqa: F811
):
    kept, lost = os.urandom(3000), os.urandom(4000)
    release(server, course, tmp_path, {"kept.txt": kept, "lost.txt": lost}, name="ps4")
    with damaged(server, lost, None):  # as if the disk lost it
        answer = http("stu1").get(f"courses/{course}/assignments/ps4", headers={"Accept": BUNDLE})
        assert answer.status_code == 200
        head, rest = split_bundle(answer)
        assert head["blobs"] == [{"sha256": sha(kept), "size": len(kept)}] and rest == kept
        stu = NgshareClient(server.url, token_for("stu1"), retries=0)
        with stu, pytest.raises(ClientError, match=sha(lost)) as failed:
            stu.fetch_assignment(course, "ps4", tmp_path / "got")
    assert failed.value.status == 404
    assert not (tmp_path / "got").exists()
