"""v2 limits: each refusal is a 413 naming the limit, and nothing is committed."""

import hashlib
import os
import time

import pytest

from ngshare.client import ClientError, FeedbackFiles, NgshareClient
from tests.servers import ServerProcess, token_for, token_server

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("limited")
    proc = token_server(
        data_dir, "--max-file-mib", "1", "--max-upload-mib", "2", "--max-files-per-upload", "3",
        "--course-quota-mib", "3",
    )  # fmt: skip
    with NgshareClient(proc.url, token_for("admin"), retries=0) as admin:
        admin.http.post("../course/lim", params={}, data={"instructors": '["admin"]'})
        yield proc, admin
    proc.stop()


def tree(root, sizes: dict[str, int]):
    root.mkdir(parents=True, exist_ok=True)
    for name, size in sizes.items():
        (root / name).write_bytes(os.urandom(size))
    return root


def refused(call) -> ClientError:
    with pytest.raises(ClientError) as caught:
        call()
    assert caught.value.status == 413
    return caught.value


def test_file_size_limit(limited, tmp_path):
    _proc, admin = limited
    error = refused(lambda: admin.release("lim", "a", tree(tmp_path / "t", {"big": MiB + 1})))
    # the release bundles the small file: its manifest is refused before any byte is stored
    assert error.message == "File big exceeds the largest file limit of 1 MiB"
    assert admin.assignments("lim") == []


def test_manifest_file_size_limit_names_the_file(limited):
    _proc, admin = limited
    manifest = {"files": [{"path": "huge.bin", "sha256": "0" * 64, "size": 5 * MiB}]}
    error = refused(lambda: admin.request("PUT", "courses/lim/assignments/a", json=manifest))
    assert error.message == "File huge.bin exceeds the largest file limit of 1 MiB"


def test_upload_total_limit(limited, tmp_path):
    _proc, admin = limited
    sizes = {"a": MiB, "b": MiB, "c": 1000}
    error = refused(lambda: admin.release("lim", "a", tree(tmp_path / "t", sizes)))
    assert error.message == "The files add up to more than the upload limit of 2 MiB"
    assert admin.assignments("lim") == []


def test_files_per_upload_limit(limited, tmp_path):
    _proc, admin = limited
    sizes = {f"f{i}": 10 for i in range(4)}
    error = refused(lambda: admin.release("lim", "a", tree(tmp_path / "t", sizes)))
    assert error.message == "Too many files: the limit is 3 per upload"


def test_course_quota(limited, tmp_path):
    _proc, admin = limited
    admin.release("lim", "q1", tree(tmp_path / "one", {"a": MiB, "b": MiB}))
    error = refused(
        lambda: admin.release("lim", "q2", tree(tmp_path / "two", {"c": MiB, "d": MiB}))
    )
    assert error.message == "The course storage quota of 3 MiB would be exceeded"
    assert [a["name"] for a in admin.assignments("lim")] == ["q1"]


def test_scheduled_gc_runs_in_the_server(tmp_path):
    proc = ServerProcess(
        tmp_path,
        ["--dev", "--admins", "admin", "--gc-interval-minutes", "0.01",
         "--gc-grace-minutes", "0"],
    )  # fmt: skip
    proc.wait_ready()
    try:
        orphan = b"stored by a request that never committed"
        sha = hashlib.sha256(orphan).hexdigest()
        path = proc.data_dir / "blobs" / sha[:2] / sha[2:4] / sha
        path.parent.mkdir(parents=True)
        path.write_bytes(orphan)
        past = time.time() - 60
        os.utime(path, (past, past))
        deadline = time.monotonic() + 20
        while path.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not path.exists()
        assert "gc: removed" in proc.log()
    finally:
        proc.stop()


def test_bulk_feedback_sets_share_one_uploads_file_limit(limited, tmp_path):
    """Two sets of two files under the three-file limit: 413 naming it, nothing
    released; one set per request fits."""
    from tests.test_v2_feedback_bulk import feedback_files

    _proc, admin = limited
    admin.release("lim", "fb", tree(tmp_path / "r", {"q.txt": 10}))
    ids = [admin.submit("lim", "fb", tree(tmp_path / f"s{i}", {"a": 10}))["id"] for i in (1, 2)]
    trees = {i: {"x.html": b"%d" % i, "y": b"y"} for i in ids}
    sets = [FeedbackFiles("admin", i, feedback_files(tmp_path / f"fb{i}", trees[i])) for i in ids]
    error = refused(lambda: admin.put_feedback_many("lim", "fb", sets))
    assert "limit is 3 per upload" in error.message
    assert all(s["feedback"] is None for s in admin.submissions("lim", "fb"))
    released = admin.put_feedback_many("lim", "fb", sets, per_request=1)
    assert [(r["submission_id"], r["changed"]) for r in released] == [(i, True) for i in ids]
