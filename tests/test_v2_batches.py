"""v2 blob batches on the wire, and the client's hash cache and local copies."""

import hashlib
import json
import os
import threading
import time

import httpx
import pytest

from ngshare.client import NgshareClient
from ngshare.client.local import BackgroundSink, HashCache, LocalCopies
from ngshare.client.trees import scan_tree
from ngshare.storage.direct import DirectAppender
from tests.servers import token_for

MEDIA = "application/vnd.ngshare.blob-batch"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def batch_body(blobs: list[bytes], declared: list[tuple[str, int]] | None = None) -> bytes:
    names = declared or [(sha(b), len(b)) for b in blobs]
    head = json.dumps({"blobs": [{"sha256": s, "size": n} for s, n in names]})
    return head.encode() + b"\n" + b"".join(blobs)


@pytest.fixture
def http(server):
    def make(user: str) -> httpx.Client:
        return httpx.Client(
            base_url=server.url + "/v2/",
            headers={"Authorization": f"token {token_for(user)}"},
            timeout=30,
        )

    return make


def post_batch(client: httpx.Client, course: str, body: bytes) -> httpx.Response:
    return client.post(f"courses/{course}/blobs", content=body, headers={"Content-Type": MEDIA})


def missing(client: httpx.Client, course: str, hashes: list[str]) -> set[str]:
    answer = client.post(f"courses/{course}/blobs/missing", json={"sha256": hashes})
    return set(answer.json()["missing"])


def test_upload_batch_stores_new_blobs_and_skips_present_ones(http, course):
    stu = http("stu1")
    # tiny, but not one byte: other tests on this server store 1-byte blobs such as b"2"
    first, second, big = os.urandom(1000), os.urandom(8), os.urandom(3 * 1024 * 1024 + 1)
    assert post_batch(stu, course, batch_body([first])).json() == {
        "stored": [sha(first)],
        "present": [],
    }
    answer = post_batch(stu, course, batch_body([first, second, b"", big]))
    assert answer.status_code == 200, answer.text
    got = answer.json()
    # the empty blob may be there already (other tests): stored or present, never lost
    assert sorted([*got["stored"], *got["present"]]) == sorted(map(sha, [first, second, b"", big]))
    assert set(got["stored"]) >= {sha(second), sha(big)} and sha(first) in got["present"]
    assert missing(stu, course, [sha(first), sha(second), sha(b""), sha(big)]) == set()


def test_upload_batch_refuses_a_mismatch_and_keeps_nothing_of_it(http, course):
    stu = http("stu1")
    good, bad, after = os.urandom(100), os.urandom(2 * 1024 * 1024), os.urandom(50)
    wrong = sha(b"something else")
    declared = [(sha(good), 100), (wrong, len(bad)), (sha(after), 50)]
    answer = post_batch(stu, course, batch_body([good, bad, after], declared))
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["reason"] == "hash_mismatch" and wrong in error["message"]
    assert missing(stu, course, [sha(good), wrong, sha(after)]) == {wrong, sha(after)}


def test_upload_batch_refuses_a_small_mismatch_and_stores_the_blobs_before_it(http, course):
    stu = http("stu1")
    good, bad, after = os.urandom(100), os.urandom(1000), os.urandom(50)
    wrong = sha(b"not these bytes either")
    declared = [(sha(good), 100), (wrong, len(bad)), (sha(after), 50)]
    answer = post_batch(stu, course, batch_body([good, bad, after], declared))
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["reason"] == "hash_mismatch" and wrong in error["message"]
    assert sha(bad) in error["message"]  # what the bytes really hash to
    assert {sha(good), wrong} & missing(stu, course, [sha(good), wrong]) == {wrong}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"blobs": [}\n', "first line is not valid"),
        (b"no newline at all", "one line of JSON"),
        (batch_body([b"abc"], [(sha(b"abc"), 10)]), "ended 7 bytes before"),
        (batch_body([b"abc"]) + b"extra", "more bytes than the blobs"),
        (batch_body([b"abc"], [("not-a-hash", 3)]), "Not a sha256"),
    ],
)
def test_upload_batch_bad_bodies_are_400(http, course, body, message):
    answer = post_batch(http("stu1"), course, body)
    assert answer.status_code == 400, answer.text
    assert message in answer.json()["error"]["message"]


def test_download_batch_concatenates_in_the_order_asked(http, course):
    inst = http("inst1")
    blobs = [os.urandom(n) for n in (10, 0, 2 * 1024 * 1024 + 3, 7)]
    assert post_batch(inst, course, batch_body(blobs)).status_code == 200
    files = [
        {"path": f"f{i}", "sha256": sha(b), "size": len(b), "executable": False}
        for i, b in enumerate(blobs)
    ]
    assert inst.put(f"courses/{course}/assignments/ps1", json={"files": files}).status_code == 201
    order = [sha(blobs[2]), sha(blobs[0]), sha(blobs[3]), sha(blobs[0]), sha(blobs[1])]
    answer = http("stu2").post(f"courses/{course}/blobs/batch", json={"sha256": order})
    assert answer.status_code == 200
    assert answer.content == blobs[2] + blobs[0] + blobs[3] + blobs[0] + blobs[1]
    sizes = [len(blobs[i]) for i in (2, 0, 3, 0, 1)]
    assert answer.headers["ngshare-blob-sizes"] == ",".join(map(str, sizes))


def test_download_batch_only_serves_what_the_caller_may_read(http, course, tmp_path):
    mine = os.urandom(64)
    stu1 = NgshareClient(http("stu1").base_url.__str__().removesuffix("v2/"), token_for("stu1"))
    released = os.urandom(32)
    inst = http("inst1")
    post_batch(inst, course, batch_body([released]))
    entry = {"path": "a", "sha256": sha(released), "size": 32, "executable": False}
    inst.put(f"courses/{course}/assignments/ps1", json={"files": [entry]})
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "answer.txt").write_bytes(mine)
    stu1.submit(course, "ps1", tmp_path / "sub")
    stu1.close()
    stu2 = http("stu2")
    both = {"sha256": [sha(released), sha(mine)]}
    refused = stu2.post(f"courses/{course}/blobs/batch", json=both)
    assert refused.status_code == 404 and sha(mine) in refused.json()["error"]["message"]
    allowed = inst.post(f"courses/{course}/blobs/batch", json=both)
    assert allowed.content == released + mine
    unknown = stu2.post(f"courses/{course}/blobs/batch", json={"sha256": [sha(b"nope")]})
    assert unknown.status_code == 404
    bad = stu2.post(f"courses/{course}/blobs/batch", json={"sha256": ["x"]})
    assert bad.status_code == 400


def test_hash_cache_trusts_only_unchanged_files(tmp_path):
    target = tmp_path / "data.bin"
    target.write_bytes(b"a" * 100)
    cache = HashCache(tmp_path / "cache.json")
    cache.put(target, "recorded-hash")
    [found] = scan_tree(tmp_path, ignore=["cache.json"], cache=cache)
    assert found.sha256 == "recorded-hash"  # not read again
    time.sleep(0.01)
    target.write_bytes(b"b" * 100)  # same size, new content and times
    [found] = scan_tree(tmp_path, ignore=["cache.json"], cache=cache)
    assert found.sha256 == sha(b"b" * 100)
    cache.save()
    again = HashCache(tmp_path / "cache.json")  # persisted between processes
    assert again.get(target, os.stat(target)) == sha(b"b" * 100)


def test_local_copies_move_spares_then_copy_and_notice_changes(tmp_path):
    source = tmp_path / "blob"
    source.write_bytes(b"x" * 10)
    copies = LocalCopies()
    copies.add("h", source, spare=True)
    first, second = tmp_path / "one", tmp_path / "two"
    assert copies.copy("h", 10, first) and not source.exists()  # moved, not copied
    assert copies.copy("h", 10, second) and first.read_bytes() == second.read_bytes()
    assert not copies.copy("h", 11, tmp_path / "three")  # another size: not that blob
    copies.add("h", second)
    time.sleep(0.01)
    second.write_bytes(b"y" * 10)  # changed since it was verified
    assert not copies.copy("h", 10, tmp_path / "four")
    assert not (tmp_path / "four").exists()


def test_local_copies_link_large_files_but_copy_small_and_executable_ones(tmp_path):
    big, small = tmp_path / "big", tmp_path / "small"
    big.write_bytes(b"d" * 2048)
    small.write_bytes(b"s" * 10)
    copies = LocalCopies(link_min=1024)
    copies.add("big", big)
    copies.add("small", small)
    assert copies.copy("big", 2048, tmp_path / "big2")
    assert os.stat(tmp_path / "big2").st_ino == os.stat(big).st_ino  # one inode, two names
    assert copies.copy("big", 2048, tmp_path / "big3")  # the link did not spoil the record
    assert os.stat(big).st_nlink == 3
    assert copies.copy("big", 2048, tmp_path / "exe", executable=True)
    assert os.stat(tmp_path / "exe").st_ino != os.stat(big).st_ino
    assert copies.copy("small", 10, tmp_path / "small2")
    assert os.stat(tmp_path / "small2").st_ino != os.stat(small).st_ino
    big.chmod(0o755)
    copies.add("big", big)
    assert copies.copy("big", 2048, tmp_path / "big4")  # an executable source: copied
    assert os.stat(tmp_path / "big4").st_ino != os.stat(big).st_ino


def test_client_collects_many_trees_moving_each_blob_once(server, course, tmp_path):
    shared, own = os.urandom(300_000), [os.urandom(1000) for _ in range(3)]
    with NgshareClient(server.url, token_for("inst1")) as inst:
        (tmp_path / "rel").mkdir()
        (tmp_path / "rel" / "data.bin").write_bytes(shared)
        inst.release(course, "ps1", tmp_path / "rel")
    for i, student in enumerate(("stu1", "stu2")):
        root = tmp_path / student
        root.mkdir()
        (root / "data.bin").write_bytes(shared)
        (root / "answer.txt").write_bytes(own[i])
        with NgshareClient(server.url, token_for(student)) as client:
            client.submit(course, "ps1", root)
    with NgshareClient(server.url, token_for("inst1"), link_min=200_000) as inst:
        listed = inst.submissions(course, "ps1", latest=True, files=True)
        trees = [(s["files"], tmp_path / "got" / s["student"]) for s in listed]
        sent = []
        inst.http.event_hooks["request"].append(lambda request: sent.append(request.url.path))
        inst.download_trees(course, [files for files, _dest in trees], tmp_path / "got")
        assert sent == [f"/api/v2/courses/{course}/blobs/batch"]  # 3 distinct blobs, 1 request
        for files, dest in trees:
            inst.download_tree(course, files, dest)
        assert len(sent) == 1  # the trees were written from local copies
        inst.forget_prefetched()
    for i, student in enumerate(("stu1", "stu2")):
        assert (tmp_path / "got" / student / "data.bin").read_bytes() == shared
        assert (tmp_path / "got" / student / "answer.txt").read_bytes() == own[i]
    assert not list((tmp_path / "got").glob(".ngshare-blobs-*"))
    # the shared data file is one file with two names; the small answers are separate
    assert (
        os.stat(tmp_path / "got/stu1/data.bin").st_ino
        == os.stat(tmp_path / "got/stu2/data.bin").st_ino
    )


def test_background_sink_writes_and_hashes_in_order_and_stops_its_thread(tmp_path):
    chunks = [os.urandom(n) for n in (0, 1, 70_000, 1 << 20, 3, 65_536)]
    with (tmp_path / "out").open("wb") as handle:
        sink = BackgroundSink(handle, hashlib.sha256(), batch=100_000, depth=2)
        for chunk in chunks:
            sink.write(chunk)
        assert sink.received == sum(map(len, chunks))
        assert sink.hexdigest() == sha(b"".join(chunks))
        sink.close()  # idempotent
    assert not any(thread.is_alive() for thread in sink._threads)
    assert (tmp_path / "out").read_bytes() == b"".join(chunks)


def test_background_sink_writes_large_downloads_past_the_page_cache(tmp_path):
    chunks = [os.urandom(n) for n in (65_536, 1 << 20, 3, 5 << 20, 4095, 70_001)]
    with (tmp_path / "out").open("wb") as handle:
        sink = BackgroundSink(handle, hashlib.sha256(), direct=True)
        assert sink._appender is not None, "O_DIRECT unavailable on the test filesystem"
        for chunk in chunks:
            sink.write(chunk)
        assert sink.hexdigest() == sha(b"".join(chunks))
        assert sink._appender.direct_fd is not None, "a write fell back from O_DIRECT"
    assert (tmp_path / "out").read_bytes() == b"".join(chunks)


def test_background_sink_continues_a_file_from_an_unaligned_offset(tmp_path, monkeypatch):
    direct_bytes = []
    original = DirectAppender._write_blocks

    def counted(self, view, position):
        direct_bytes.append(len(view))
        original(self, view, position)

    monkeypatch.setattr(DirectAppender, "_write_blocks", counted)
    head = os.urandom(5000)  # the part a first attempt wrote: not a whole block
    (tmp_path / "out").write_bytes(head)
    chunks = [os.urandom(n) for n in (100, 3 << 20, 8192, 12_345, 1 << 20)]
    with (tmp_path / "out").open("ab") as handle:
        sink = BackgroundSink(handle, hashlib.sha256(), batch=1 << 20, direct=True)
        assert sink.received == len(head)
        for chunk in chunks:
            sink.write(chunk)
        assert sink.hexdigest() == sha(b"".join(chunks))
        assert sink._appender.direct_fd is not None, "a write fell back from O_DIRECT"
    assert (tmp_path / "out").read_bytes() == head + b"".join(chunks)
    # all but the head up to the first block boundary and the last partial block
    assert sum(direct_bytes) == (len(head) + sum(map(len, chunks))) // 4096 * 4096 - 8192


def test_background_sink_holds_at_most_its_ring_while_the_disk_lags(tmp_path):
    class SlowDigest:
        """sha256 that waits for `go` before its first update: a disk or CPU far behind."""

        def __init__(self) -> None:
            self.inner, self.go = hashlib.sha256(), threading.Event()

        def update(self, data) -> None:
            assert self.go.wait(30)
            self.inner.update(data)

        def hexdigest(self) -> str:
            return self.inner.hexdigest()

    digest, data = SlowDigest(), os.urandom(1 << 20)
    with (tmp_path / "out").open("wb") as handle:
        sink = BackgroundSink(handle, digest, batch=65_536, depth=2)
        receiver = threading.Thread(target=sink.write, args=(data,))
        receiver.start()
        receiver.join(0.5)
        assert receiver.is_alive(), "the receiver ran 16 batches ahead of the hashing"
        assert sink._made == 4  # depth + 2 buffers, all waiting for the hash
        digest.go.set()
        receiver.join(30)
        assert sink.hexdigest() == sha(data)
    assert (tmp_path / "out").read_bytes() == data


def test_background_sink_raises_a_failed_write(tmp_path):
    with (tmp_path / "out").open("wb") as handle:
        sink = BackgroundSink(handle, hashlib.sha256(), batch=10, depth=1)
        handle.close()  # every write on the other thread now fails
        with pytest.raises(ValueError, match="closed file"):
            for _ in range(10):  # the failure surfaces at a later hand-off
                sink.write(b"x" * 10)
        with pytest.raises(ValueError):
            sink.close()
    assert not any(thread.is_alive() for thread in sink._threads)
